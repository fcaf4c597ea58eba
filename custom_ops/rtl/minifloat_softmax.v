// minifinn MinifloatSoftmax, RTL backend (Verilog-2005). Arithmetic contract: custom_ops/minifloat_softmax.py; same
// schedule as custom_ops/hls/minifloat_softmax.hpp. Per row of N codes (NF = N/PE words, code 0 in the LSBs):
//   READ   NF words into buf; EXACT: S += etab[c]; else h_min = min shift[c]        (in0 ready only here)
//   SUM    (not EXACT) NF cycles: S += sum_p e(c_p), e(c) = etab[c] >> (shift[c] - h_min) (0 when >= EB)
//   THR    K cycles: theta[k] = (nums[k] * S + bias[k] + 2^D - 1) >> D (one multiplier)
//   OUT    NF words: lane code = codes[OFFSET + #{k : e(c) >= theta[k]}], AXI-stream output register
// ROMs ($readmemh): ETAB_FILE/SHIFT_FILE (2^IB entries), NUMS_FILE/BIAS_FILE (KA entries), CODES_FILE (NV entries).
module minifloat_softmax #(
    parameter N = 4, parameter PE = 1, parameter IB = 6, parameter OB = 6, parameter EB = 24, parameter HB = 4,
    parameter EXACT = 1, parameter SB = 26, parameter NB = 32, parameter CW = 60, parameter TW = 27,
    parameter D = 30,
    parameter K = 1, parameter KA = 1, parameter OFFSET = 0, parameter NV = 2, parameter CB = 1,
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
    localparam S_READ = 2'd0, S_SUM = 2'd1, S_THR = 2'd2, S_OUT = 2'd3;

    reg [EB-1:0] etab  [0:(1 << IB) - 1];
    reg [HB-1:0] shift [0:(1 << IB) - 1];
    reg [NB-1:0] nums  [0:KA-1];
    reg          bias  [0:KA-1];
    reg [OB-1:0] codes [0:NV-1];
    initial begin
        $readmemh(ETAB_FILE, etab);
        $readmemh(SHIFT_FILE, shift);
        $readmemh(NUMS_FILE, nums);
        $readmemh(BIAS_FILE, bias);
        $readmemh(CODES_FILE, codes);
    end

    reg [PE*IB-1:0] buf_mem [0:NF-1];
    reg [TW-1:0]    theta [0:KA-1];
    reg [1:0]       state;
    reg [31:0]      idx;
    reg [HB-1:0]    h_min;
    reg [SB-1:0]    sum;

    // e of one code against the row's h_min
    function [EB-1:0] e_of;
        input [IB-1:0] c;
        input [HB-1:0] hm;
        reg   [HB-1:0] d;
        begin
            d = shift[c] - hm;
            e_of = (d >= EB) ? {EB{1'b0}} : (etab[c] >> d);
        end
    endfunction

    // combinational parts of the four states
    wire [PE*IB-1:0] word = (state == S_READ) ? in0_V_TDATA : buf_mem[idx];
    reg  [SB-1:0]    word_sum;     // READ (EXACT) / SUM: sum of the word's e
    reg  [HB-1:0]    word_min;     // READ (not EXACT): minimum shift of the word
    reg  [PE*OB-1:0] word_out;     // OUT: the word's output codes
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
            c = word[p*IB +: IB];
            if (shift[c] < word_min) word_min = shift[c];
            word_sum = word_sum + (EXACT ? etab[c] : e_of(c, h_min));
            lhs = {{(TW-EB){1'b0}}, e_of(c, h_min)};
            cnt = 0;
            for (k = 0; k < K; k = k + 1) cnt = cnt + (lhs >= theta[k] ? 1 : 0);
            word_out[p*OB +: OB] = codes[OFFSET + cnt];
        end
    end

    wire out_free = !out0_V_TVALID || out0_V_TREADY;
    assign in0_V_TREADY = (state == S_READ) && ap_rst_n;
    wire [CW-1:0] num_k = {{(CW-NB){1'b0}}, nums[idx]};
    wire [CW-1:0] sum_w = {{(CW-SB){1'b0}}, sum};
    wire [CW-1:0] round_up = ({{(CW-1){1'b0}}, 1'b1} << D) - 1'b1;
    wire [CW-1:0] prod = num_k * sum_w + bias[idx] + round_up;

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            state <= S_READ;
            idx <= 0;
            sum <= 0;
            h_min <= 0;
            out0_V_TVALID <= 1'b0;
        end else begin
            if (out0_V_TVALID && out0_V_TREADY) out0_V_TVALID <= 1'b0;
            case (state)
                S_READ: if (in0_V_TVALID) begin
                    buf_mem[idx] <= in0_V_TDATA;
                    if (EXACT) sum <= sum + word_sum;
                    else if (idx == 0 || word_min < h_min) h_min <= word_min;
                    if (idx == NF - 1) begin
                        idx <= 0;
                        state <= EXACT ? (K > 0 ? S_THR : S_OUT) : S_SUM;
                    end else idx <= idx + 1;
                end
                S_SUM: begin
                    sum <= sum + word_sum;
                    if (idx == NF - 1) begin
                        idx <= 0;
                        state <= K > 0 ? S_THR : S_OUT;
                    end else idx <= idx + 1;
                end
                S_THR: begin
                    theta[idx] <= prod >> D;
                    if (idx == K - 1) begin
                        idx <= 0;
                        state <= S_OUT;
                    end else idx <= idx + 1;
                end
                S_OUT: if (out_free) begin
                    out0_V_TDATA <= word_out;
                    out0_V_TVALID <= 1'b1;
                    if (idx == NF - 1) begin
                        idx <= 0;
                        sum <= 0;
                        state <= S_READ;
                    end else idx <= idx + 1;
                end
            endcase
        end
    end
endmodule
