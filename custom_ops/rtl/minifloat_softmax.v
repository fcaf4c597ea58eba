// minifinn MinifloatSoftmax, RTL backend (Verilog-2005). Arithmetic contract: custom_ops/minifloat_softmax.py.
// Three stages overlap rows (cycle model: custom_ops/softmax_schedule.py); per row of N codes (NF = N/PE words,
// code 0 in the LSBs), the row's codes stay in one of three row buffer slots from A to C:
//   A  READ NF words into the slot; EXACT: S += etab[c]; else h_min = min shift[c]     (in0 ready only here)
//      SUM (not EXACT) NF cycles: S += sum_p e(c_p), e(c) = etab[c] >> (shift[c] - h_min) (0 when >= EB)
//      then holds (S, h_min, slot) until T takes them; T takes them in the cycle the next row's first word may enter
//   T  KT = ceil(K / KU) cycles, KU multipliers: theta[k] = (nums[k] * S + bias[k] + 2^D - 1) >> D, then holds them
//      until C takes them (C copies theta, so T may start the next row at once)
//   C  NF words: lane code = codes[OFFSET + #{k : e(c) >= theta[k]}], AXI-stream output register
// ROMs ($readmemh): ETAB_FILE/SHIFT_FILE (2^IB entries), NUMS_FILE/BIAS_FILE (KA entries), CODES_FILE (NV entries).
module minifloat_softmax #(
    parameter N = 4, parameter PE = 1, parameter IB = 6, parameter OB = 6, parameter EB = 24, parameter HB = 4,
    parameter EXACT = 1, parameter SB = 26, parameter NB = 32, parameter CW = 60, parameter TW = 27,
    parameter D = 30,
    parameter K = 1, parameter KA = 1, parameter OFFSET = 0, parameter NV = 2, parameter CB = 1,
    parameter KU = 1,
    parameter ETAB_FILE = "etab.hex", parameter SHIFT_FILE = "shift.hex", parameter NUMS_FILE = "nums.hex",
    parameter BIAS_FILE = "bias.hex", parameter CODES_FILE = "codes.hex"
) (
    input  wire              ap_clk,
    input  wire              ap_rst_n,
    input  wire [PE*IB-1:0]  in0_V_TDATA,
    input  wire              in0_V_TVALID,
    output wire              in0_V_TREADY,
    output reg  [PE*OB-1:0]  out0_V_TDATA,
    output reg               out0_V_TVALID,
    input  wire              out0_V_TREADY
);
    localparam NF = N / PE;
    localparam KT = (K + KU - 1) / KU > 0 ? (K + KU - 1) / KU : 1;
    localparam KP = KT * KU;  // threshold slots, the ones >= K unused

    reg [EB-1:0] etab  [0:(1 << IB) - 1];
    reg [HB-1:0] shift [0:(1 << IB) - 1];
    reg [NB-1:0] nums  [0:KP-1];
    reg          bias  [0:KP-1];
    reg [OB-1:0] codes [0:NV-1];
    integer i;
    initial begin
        for (i = 0; i < KP; i = i + 1) begin
            nums[i] = {NB{1'b0}};
            bias[i] = 1'b0;
        end
        $readmemh(ETAB_FILE, etab);
        $readmemh(SHIFT_FILE, shift);
        $readmemh(NUMS_FILE, nums, 0, KA - 1);
        $readmemh(BIAS_FILE, bias, 0, KA - 1);
        $readmemh(CODES_FILE, codes);
    end

    reg [PE*IB-1:0] buf_mem [0:3*NF-1];

    // e of one code against a row's h_min
    function [EB-1:0] e_of;
        input [IB-1:0] c;
        input [HB-1:0] hm;
        reg   [HB-1:0] d;
        begin
            d = shift[c] - hm;
            e_of = (d >= EB) ? {EB{1'b0}} : (etab[c] >> d);
        end
    endfunction

    // ---- stage A: read (and sum) a row --------------------------------------------------------------------------
    reg          a_sum_phase;          // SUM pass (not EXACT)
    reg [31:0]   a_idx;
    reg [1:0]    a_slot;               // slot being written / summed
    reg [SB-1:0] a_sum;
    reg [HB-1:0] a_hmin;
    reg          a_full;               // a row complete, waiting for T
    reg [SB-1:0] h_sum;                // the complete row: S, h_min, slot
    reg [HB-1:0] h_hmin;
    reg [1:0]    h_slot;

    // ---- stage T: row thresholds ----------------------------------------------------------------------------------
    reg          t_busy, t_done;
    reg [31:0]   t_cnt;
    reg [SB-1:0] t_sum;
    reg [HB-1:0] t_hmin;
    reg [1:0]    t_slot;
    reg [TW-1:0] theta_t [0:KP-1];

    // ---- stage C: output -----------------------------------------------------------------------------------------
    reg          c_busy;
    reg [31:0]   c_idx;
    reg [HB-1:0] c_hmin;
    reg [1:0]    c_slot;
    reg [TW-1:0] theta_c [0:KP-1];

    wire out_free = !out0_V_TVALID || out0_V_TREADY;
    wire c_last = c_busy && out_free && (c_idx == NF - 1);
    wire c_take = t_done && (!c_busy || c_last);
    wire t_free = !t_busy && (!t_done || c_take);
    wire t_take = a_full && t_free;
    wire a_open = !a_sum_phase && (!a_full || t_free);
    assign in0_V_TREADY = a_open && ap_rst_n;
    wire a_in = a_open && in0_V_TVALID;

    // combinational parts
    wire [PE*IB-1:0] a_word = a_sum_phase ? buf_mem[a_slot * NF + a_idx] : in0_V_TDATA;
    wire [PE*IB-1:0] c_word = buf_mem[c_slot * NF + c_idx];
    reg  [SB-1:0]    word_sum;     // A: sum of the word's e (EXACT: while reading; else in the SUM pass)
    reg  [HB-1:0]    word_min;     // A (not EXACT): minimum shift of the word
    reg  [PE*OB-1:0] word_out;     // C: the word's output codes
    reg  [TW-1:0]    lhs;
    reg  [CB:0]      cnt;
    reg  [IB-1:0]    c;
    integer p, k;
    always @* begin
        word_sum = {SB{1'b0}};
        word_min = {HB{1'b1}};
        word_out = {PE*OB{1'b0}};
        lhs = {TW{1'b0}};
        cnt = 0;
        c = {IB{1'b0}};
        for (p = 0; p < PE; p = p + 1) begin
            c = a_word[p*IB +: IB];
            if (shift[c] < word_min) word_min = shift[c];
            word_sum = word_sum + (EXACT ? etab[c] : e_of(c, a_hmin));
            c = c_word[p*IB +: IB];
            lhs = {{(TW-EB){1'b0}}, e_of(c, c_hmin)};
            cnt = 0;
            for (k = 0; k < K; k = k + 1) cnt = cnt + (lhs >= theta_c[k] ? 1 : 0);
            word_out[p*OB +: OB] = codes[OFFSET + cnt];
        end
    end

    // KU threshold products a cycle
    wire [CW-1:0] sum_w = {{(CW-SB){1'b0}}, t_sum};
    wire [CW-1:0] round_up = ({{(CW-1){1'b0}}, 1'b1} << D) - 1'b1;
    reg  [CW-1:0] prod [0:KU-1];
    integer u;
    always @* begin
        for (u = 0; u < KU; u = u + 1)
            prod[u] = {{(CW-NB){1'b0}}, nums[t_cnt * KU + u]} * sum_w + bias[t_cnt * KU + u] + round_up;
    end

    wire a_last_word = a_in && (a_idx == NF - 1);
    wire a_complete = EXACT ? a_last_word : (a_sum_phase && a_idx == NF - 1);

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            a_sum_phase <= 1'b0;
            a_idx <= 0;
            a_slot <= 0;
            a_sum <= 0;
            a_hmin <= 0;
            a_full <= 1'b0;
            t_busy <= 1'b0;
            t_done <= 1'b0;
            t_cnt <= 0;
            c_busy <= 1'b0;
            c_idx <= 0;
            out0_V_TVALID <= 1'b0;
        end else begin
            // A
            if (t_take) a_full <= 1'b0;
            if (a_in) begin
                buf_mem[a_slot * NF + a_idx] <= in0_V_TDATA;
                if (EXACT) a_sum <= a_sum + word_sum;
                else if (a_idx == 0 || word_min < a_hmin) a_hmin <= word_min;
                a_idx <= (a_idx == NF - 1) ? 0 : a_idx + 1;
                if (!EXACT && a_idx == NF - 1) a_sum_phase <= 1'b1;
            end else if (a_sum_phase) begin
                a_sum <= a_sum + word_sum;
                a_idx <= (a_idx == NF - 1) ? 0 : a_idx + 1;
                if (a_idx == NF - 1) a_sum_phase <= 1'b0;
            end
            if (a_complete) begin
                a_full <= 1'b1;
                h_sum <= a_sum + word_sum;
                h_hmin <= EXACT ? {HB{1'b0}} : a_hmin;
                h_slot <= a_slot;
                a_sum <= 0;
                a_slot <= (a_slot == 2) ? 0 : a_slot + 1;
            end
            // T
            if (c_take) t_done <= 1'b0;
            if (t_take) begin
                t_busy <= 1'b1;
                t_cnt <= 0;
                t_sum <= h_sum;
                t_hmin <= h_hmin;
                t_slot <= h_slot;
            end else if (t_busy) begin
                if (t_cnt == KT - 1) begin
                    t_busy <= 1'b0;
                    t_done <= 1'b1;
                end else t_cnt <= t_cnt + 1;
            end
            // C
            if (out0_V_TVALID && out0_V_TREADY) out0_V_TVALID <= 1'b0;
            if (c_busy && out_free) begin
                out0_V_TDATA <= word_out;
                out0_V_TVALID <= 1'b1;
                c_idx <= (c_idx == NF - 1) ? 0 : c_idx + 1;
                if (c_idx == NF - 1) c_busy <= 1'b0;
            end
            if (c_take) begin
                c_busy <= 1'b1;
                c_idx <= 0;
                c_hmin <= t_hmin;
                c_slot <= t_slot;
            end
        end
    end

    // the threshold registers: T writes KU of theta_t a cycle, C copies all of them when it takes a row
    genvar g;
    generate
        for (g = 0; g < KP; g = g + 1) begin : thr
            always @(posedge ap_clk) begin
                if (ap_rst_n && !t_take && t_busy && t_cnt == g / KU) theta_t[g] <= prod[g % KU] >> D;
                if (ap_rst_n && c_take) theta_c[g] <= theta_t[g];
            end
        end
    endgenerate
endmodule
