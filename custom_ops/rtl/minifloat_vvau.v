// minifinn MinifloatVVAU, RTL backend (Verilog-2005; needs custom_ops/mac/mf_mac.v).
//
// Vector-vector activation unit of a depthwise convolution: C = NF*PE channels, K = SF*SIMD kernel positions per
// window, SIMD = 1 or NF = 1. Input word j = sf*NF + nf (one per cycle, in the sliding-window stream's order) holds
// at lane i*PE + p the window code of kernel position sf*SIMD + i, channel nf*PE + p; the weight ROM word j
// (WEIGHT_FILE) holds the weight code for the same lane. PE p adds the SIMD products of its lanes (mf_mul, exact) to
// its accumulator of channel group nf (an NF-deep memory; cleared at sf = 0). After the last sf step of group nf the
// PE sums leave: with NO_ACT = 0 each is compared against the N_THRES ascending thresholds of its channel
// (THRESH_FILE: word ch, T_0 in the LSBs) and the count mapped to an output code (CODE_FILE); with NO_ACT = 1 the
// accumulator is the output. AXI-stream in (SIMD*PE codes) / out (PE results), element 0 in the LSBs; valid/ready.
module minifloat_vvau #(
    parameter K = 9, parameter C = 4, parameter PE = 2, parameter SIMD = 1,
    parameter A_BITS = 6, parameter A_E = 3, parameter A_SIGNED = 1,
    parameter W_BITS = 6, parameter W_E = 3, parameter W_SIGNED = 1,
    parameter ACC_BITS = 24,
    parameter NO_ACT = 0,
    parameter N_THRES = 1,
    parameter O_BITS = 6,                 // output code bits (ACC_BITS when NO_ACT = 1)
    parameter WEIGHT_FILE = "weights.hex",
    parameter THRESH_FILE = "thresholds.hex",
    parameter CODE_FILE = "codes.hex"
) (
    input  wire                       ap_clk,
    input  wire                       ap_rst_n,
    input  wire [SIMD*PE*A_BITS-1:0]  in0_V_TDATA,
    input  wire                       in0_V_TVALID,
    output wire                       in0_V_TREADY,
    output reg  [PE*O_BITS-1:0]       out0_V_TDATA,
    output reg                        out0_V_TVALID,
    input  wire                       out0_V_TREADY
);
    localparam NF = C / PE;
    localparam SF = K / SIMD;
    localparam NFW = (NF > 1) ? $clog2(NF) : 1;
    localparam SFW = (SF > 1) ? $clog2(SF) : 1;
    localparam CW = (N_THRES > 0) ? $clog2(N_THRES + 1) : 1;
    localparam DWA = (A_E == 0) ? (A_SIGNED ? A_BITS : A_BITS + 1) : ((1 << A_E) + A_BITS - 1 - A_E);
    localparam DWB = (W_E == 0) ? (W_SIGNED ? W_BITS : W_BITS + 1) : ((1 << W_E) + W_BITS - 1 - W_E);
    localparam PW = DWA + DWB;

    reg [N_THRES*ACC_BITS-1:0] tmem [0:(NO_ACT ? 1 : C)-1];   // word ch: its thresholds, T_0 in the LSBs
    reg [O_BITS-1:0]   cmem [0:(NO_ACT ? 1 : N_THRES+1)-1];
    reg [SIMD*PE*W_BITS-1:0] wmem [0:NF*SF-1];
    initial begin
        $readmemh(WEIGHT_FILE, wmem);
        if (!NO_ACT) begin
            $readmemh(THRESH_FILE, tmem);
            $readmemh(CODE_FILE, cmem);
        end
    end

    reg [NFW-1:0] nf;
    reg [SFW-1:0] sf;
    reg           pending;          // done holds a finished channel group, not yet moved to the output register
    reg [NFW-1:0] nf_pending;
    wire out_free = !out0_V_TVALID || out0_V_TREADY;
    wire stall = pending && !out_free;
    wire step = !stall && in0_V_TVALID;
    assign in0_V_TREADY = !stall;
    wire [SIMD*PE*W_BITS-1:0] wword = wmem[sf*NF + nf];
    wire last_sf = (sf == SF - 1);

    reg [PE*ACC_BITS-1:0] done;
    genvar p, i;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            wire signed [PW-1:0] prod [0:SIMD-1];
            for (i = 0; i < SIMD; i = i + 1) begin : g_lane
                mf_mul #(.A_BITS(A_BITS), .A_E(A_E), .A_SIGNED(A_SIGNED), .B_BITS(W_BITS), .B_E(W_E),
                         .B_SIGNED(W_SIGNED))
                    mul (.a(in0_V_TDATA[(i*PE + p)*A_BITS +: A_BITS]), .b(wword[(i*PE + p)*W_BITS +: W_BITS]),
                         .p(prod[i]));
            end
            reg signed [ACC_BITS-1:0] accm [0:NF-1];
            reg signed [ACC_BITS-1:0] sum;
            integer s;
            always @* begin
                sum = (sf == 0) ? $signed({ACC_BITS{1'b0}}) : accm[nf];
                for (s = 0; s < SIMD; s = s + 1) sum = sum + prod[s];
            end
            always @(posedge ap_clk) begin
                if (step) begin
                    accm[nf] <= sum;
                    if (last_sf) done[p*ACC_BITS +: ACC_BITS] <= sum;
                end
            end
        end
    endgenerate

    // output stage: thresholds + code table, or the raw accumulators
    wire [PE*O_BITS-1:0] result;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_out
            if (NO_ACT) begin : g_acc
                assign result[p*O_BITS +: O_BITS] = done[p*ACC_BITS +: ACC_BITS];
            end else begin : g_thr
                wire [N_THRES*ACC_BITS-1:0] tword = tmem[nf_pending*PE + p];
                wire [CW-1:0] cnt;
                mf_threshold #(.ACC_BITS(ACC_BITS), .N(N_THRES), .OUT_BITS(CW))
                    thr (.acc(done[p*ACC_BITS +: ACC_BITS]), .thresholds(tword), .count(cnt));
                assign result[p*O_BITS +: O_BITS] = cmem[cnt];
            end
        end
    endgenerate

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            nf <= 0; sf <= 0; pending <= 1'b0; nf_pending <= 0; out0_V_TVALID <= 1'b0;
        end else begin
            if (out0_V_TVALID && out0_V_TREADY) out0_V_TVALID <= 1'b0;
            if (pending && out_free) begin
                out0_V_TDATA <= result;
                out0_V_TVALID <= 1'b1;
                pending <= 1'b0;
            end
            if (step) begin
                if (last_sf) begin
                    pending <= 1'b1;
                    nf_pending <= nf;
                end
                if (nf == NF - 1) begin
                    nf <= 0;
                    sf <= last_sf ? 0 : sf + 1'b1;
                end else begin
                    nf <= nf + 1'b1;
                end
            end
        end
    end
endmodule
