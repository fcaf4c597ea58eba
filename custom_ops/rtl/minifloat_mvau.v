// minifinn MinifloatMVAU, RTL backend (Verilog-2005; needs custom_ops/mac/mf_mac.v).
//
// Matrix-vector activation unit, FINN folding: per input vector, NF = MH/PE neuron folds x SF = MW/SIMD synapse
// folds, one (nf, sf) step per cycle. The input vector is buffered during nf = 0 and reused for nf > 0.
// Weights: ROM word nf*SF+sf holds W[sf*SIMD+i][nf*PE+p] at bits (p*SIMD+i)*W_BITS (from WEIGHT_FILE). W_BLOCK = 0:
// a LUT ROM read combinationally at (nf, sf); W_BLOCK = 1: block RAM read through its register (mf_rom of
// mf_requant_lib.v) at the (nf, sf) of the next cycle, so the word of the current (nf, sf) is ready without a cycle
// more (the same cycles and results).
// After the last sf step of a fold the PE accumulators hold exact dot products (mf_dotp_pe: LUT products, or with
// USE_DSP = 1 DSP48 products, several PE channels' products of one activation per DSP48); with NO_ACT=0 each is
// compared against the N_THRES ascending thresholds of its channel (THRESH_FILE: word ch, T_0 in the LSBs); the count
// is mapped to an output code (CODE_FILE: word count); with NO_ACT=1 the accumulator is the output.
// AXI-stream: in (SIMD codes, element 0 in the LSBs), out (PE results, element 0 in the LSBs); valid/ready.
// DYN = 1 (dynamic_input): no weight ROM; before every group of VECS input vectors the matrix arrives on in1 in FINN's
// MVAU mem_mode "dynamic" order: rows k = 0..MW-1, each as NF words of PE codes W[k][nf*PE+p] (p = 0 in the LSBs).
// Word (k, nf) is written into bank k % SIMD at address nf*SF + k/SIMD (SIMD banks of NF*SF x PE*W_BITS, one matrix);
// the compute steps read all banks at nf*SF + sf, which is the ROM word.
// EXT = 1 (mem_mode "external"): no weight memory; the word of step (nf, sf), laid out as the ROM word (PE*SIMD
// codes), arrives on in1 (from external memory), one per step, the matrix again for every input vector: a step
// waits for its weight word as it waits for its activation word. in1 is unused (tied off) when DYN = EXT = 0.
module minifloat_mvau #(
    parameter MW = 8, parameter MH = 4, parameter PE = 2, parameter SIMD = 2,
    parameter A_BITS = 6, parameter A_E = 3, parameter A_SIGNED = 1,
    parameter W_BITS = 6, parameter W_E = 3, parameter W_SIGNED = 1,
    parameter ACC_BITS = 24,
    parameter NO_ACT = 0,
    parameter N_THRES = 1,
    parameter O_BITS = 6,                 // output code bits (ACC_BITS when NO_ACT = 1)
    parameter WEIGHT_FILE = "weights.hex",
    parameter THRESH_FILE = "thresholds.hex",
    parameter CODE_FILE = "codes.hex",
    parameter DYN = 0,
    parameter VECS = 1,                   // input vectors per matrix (DYN = 1)
    parameter USE_DSP = 0,                // 1: significand products in DSP48s, packed (custom_ops/mac/packing.py)
    parameter GROUPS = 1, parameter FIELD = 8, parameter PACK_BITS = 16,  // the packing plan (USE_DSP = 1)
    parameter W_BLOCK = 0,                // weight ROM in block RAM (DYN = 0, EXT = 0)
    parameter EXT = 0                     // weights streamed on in1, one PE*SIMD word per step
) (
    input  wire                     ap_clk,
    input  wire                     ap_rst_n,
    input  wire [SIMD*A_BITS-1:0]   in0_V_TDATA,
    input  wire                     in0_V_TVALID,
    output wire                     in0_V_TREADY,
    output reg  [PE*O_BITS-1:0]     out0_V_TDATA,
    output reg                      out0_V_TVALID,
    input  wire                     out0_V_TREADY,
    input  wire [(EXT ? PE*SIMD : PE)*W_BITS-1:0] in1_V_TDATA,
    input  wire                     in1_V_TVALID,
    output wire                     in1_V_TREADY
);
    localparam NF = MH / PE;
    localparam SF = MW / SIMD;
    localparam NFW = (NF > 1) ? $clog2(NF) : 1;
    localparam SFW = (SF > 1) ? $clog2(SF) : 1;
    localparam CW = (N_THRES > 0) ? $clog2(N_THRES + 1) : 1;

    reg [N_THRES*ACC_BITS-1:0] tmem [0:(NO_ACT ? 1 : MH)-1];   // word ch: its thresholds, T_0 in the LSBs
    reg [O_BITS-1:0]   cmem [0:(NO_ACT ? 1 : N_THRES+1)-1];
    initial begin
        if (!NO_ACT) begin
            $readmemh(THRESH_FILE, tmem);
            $readmemh(CODE_FILE, cmem);
        end
    end

    reg [SIMD*A_BITS-1:0] ibuf [0:SF-1];
    reg [NFW-1:0] nf;
    reg [SFW-1:0] sf;
    reg           pending;          // accumulators hold a finished fold, not yet moved to the output register
    reg [NFW-1:0] nf_pending;
    localparam VW = (VECS > 1) ? $clog2(VECS) : 1;
    localparam IW_ = (SIMD > 1) ? $clog2(SIMD) : 1;
    reg          loading;         // DYN: the matrix buffer is being (re)filled from in1
    reg [NFW-1:0] lnf;            // next matrix word (k = lsf*SIMD + li, nf = lnf): nf fastest, then li, then lsf
    reg [IW_-1:0] li;
    reg [SFW-1:0] lsf;
    reg [VW-1:0] vcnt;            // vectors done in the current group
    wire load = DYN && loading && in1_V_TVALID;
    wire load_last = (lnf == NF - 1) && (li == SIMD - 1) && (lsf == SF - 1);
    wire out_free = !out0_V_TVALID || out0_V_TREADY;
    wire stall = (pending && !out_free) || loading;
    wire need_in = (nf == 0);
    wire w_ok = !EXT || in1_V_TVALID;           // EXT: the step's weight word is there
    wire step = !stall && (!need_in || in0_V_TVALID) && w_ok;
    assign in0_V_TREADY = need_in && !stall && w_ok;
    assign in1_V_TREADY = EXT ? (!stall && (!need_in || in0_V_TVALID)) : (DYN && loading);
    wire [SIMD*A_BITS-1:0] act = need_in ? in0_V_TDATA : ibuf[sf];
    wire [PE*SIMD*W_BITS-1:0] wword;
    wire last_sf = (sf == SF - 1);
    genvar i, q;
    generate
        if (DYN) begin : g_dyn
            for (i = 0; i < SIMD; i = i + 1) begin : g_bank
                reg [PE*W_BITS-1:0] bank [0:NF*SF-1];
                always @(posedge ap_clk) if (load && li == i) bank[lnf*SF + lsf] <= in1_V_TDATA;
                wire [PE*W_BITS-1:0] bword = bank[nf*SF + sf];
                for (q = 0; q < PE; q = q + 1) begin : g_lane
                    assign wword[(q*SIMD + i)*W_BITS +: W_BITS] = bword[q*W_BITS +: W_BITS];
                end
            end
        end else if (EXT) begin : g_ext
            assign wword = in1_V_TDATA;
        end else if (!W_BLOCK) begin : g_rom
            reg [PE*SIMD*W_BITS-1:0] wmem [0:NF*SF-1];
            initial $readmemh(WEIGHT_FILE, wmem);
            assign wword = wmem[nf*SF + sf];
        end else begin : g_brom
            // (nf, sf) after this edge: the step's successor, (0, 0) in reset
            wire [NFW-1:0] nf_next = (step && last_sf) ? ((nf == NF - 1) ? 0 : nf + 1'b1) : nf;
            wire [SFW-1:0] sf_next = step ? (last_sf ? 0 : sf + 1'b1) : sf;
            wire [31:0] waddr = ap_rst_n ? nf_next * SF + sf_next : 0;
            mf_rom #(.W(PE*SIMD*W_BITS), .DEPTH(NF*SF), .FILE(WEIGHT_FILE), .BLOCK(W_BLOCK))
                wrom (.clk(ap_clk), .addr(waddr[((NF*SF > 1) ? $clog2(NF*SF) : 1)-1:0]), .q(wword));
        end
    endgenerate

    wire [PE*ACC_BITS-1:0] accs;
    mf_dotp_pe #(.PE(PE), .SIMD(SIMD), .A_BITS(A_BITS), .A_E(A_E), .A_SIGNED(A_SIGNED), .B_BITS(W_BITS), .B_E(W_E),
                 .B_SIGNED(W_SIGNED), .ACC_BITS(ACC_BITS), .USE_DSP(USE_DSP), .GROUPS(GROUPS), .FIELD(FIELD),
                 .PACK_BITS(PACK_BITS))
        dot (.clk(ap_clk), .rst(!ap_rst_n), .en(step), .clear(sf == 0), .a(act), .b(wword), .acc(accs));
    genvar p;

    // output stage: thresholds + code table, or the raw accumulators
    wire [PE*O_BITS-1:0] result;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_out
            if (NO_ACT) begin : g_acc
                assign result[p*O_BITS +: O_BITS] = accs[p*ACC_BITS +: ACC_BITS];
            end else begin : g_thr
                wire [N_THRES*ACC_BITS-1:0] tword = tmem[nf_pending*PE + p];
                wire [CW-1:0] cnt;
                mf_threshold #(.ACC_BITS(ACC_BITS), .N(N_THRES), .OUT_BITS(CW))
                    thr (.acc(accs[p*ACC_BITS +: ACC_BITS]), .thresholds(tword), .count(cnt));
                assign result[p*O_BITS +: O_BITS] = cmem[cnt];
            end
        end
    endgenerate

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            nf <= 0; sf <= 0; pending <= 1'b0; nf_pending <= 0; out0_V_TVALID <= 1'b0;
            loading <= (DYN != 0); lnf <= 0; li <= 0; lsf <= 0; vcnt <= 0;
        end else begin
            if (load) begin  // constant false for DYN = 0
                if (load_last) loading <= 1'b0;
                lnf <= (lnf == NF - 1) ? 0 : lnf + 1'b1;
                if (lnf == NF - 1) begin
                    li <= (li == SIMD - 1) ? 0 : li + 1'b1;
                    if (li == SIMD - 1) lsf <= (lsf == SF - 1) ? 0 : lsf + 1'b1;
                end
            end
            if (out0_V_TVALID && out0_V_TREADY) out0_V_TVALID <= 1'b0;
            if (pending && out_free) begin
                out0_V_TDATA <= result;
                out0_V_TVALID <= 1'b1;
                pending <= 1'b0;
            end
            if (step) begin
                if (need_in) ibuf[sf] <= in0_V_TDATA;
                if (last_sf) begin
                    pending <= 1'b1;
                    nf_pending <= nf;
                    sf <= 0;
                    nf <= (nf == NF - 1) ? 0 : nf + 1'b1;
                    if (DYN && nf == NF - 1) begin  // a vector is done; after VECS of them load the next matrix
                        if (vcnt == VECS - 1) begin
                            vcnt <= 0;
                            loading <= 1'b1;
                        end else begin
                            vcnt <= vcnt + 1'b1;
                        end
                    end
                end else begin
                    sf <= sf + 1'b1;
                end
            end
        end
    end
endmodule
