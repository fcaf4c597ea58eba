// minifinn MinifloatAdd, RTL backend (Verilog-2005; needs custom_ops/mac/mf_mac.v for mf_decode, mf_threshold).
//
// Per cycle PE codes from each input stream (both must be valid): acc = K0 * decode(a) + K1 * decode(b) exactly in
// ACC_BITS + 1 bits; u = SIGNS[ch] ? -acc : acc; count = #{i : u >= T[ch][i]} (THRESH_FILE: word ch, ACC_BITS + 1
// bit thresholds, T_0 in the LSBs); output code = CODE_FILE[count]. NO_ACT = 1: the output is acc itself (O_BITS =
// ACC_BITS, two's complement; no threshold or code files). AXI-stream valid/ready on in0, in1, out0.
module minifloat_add #(
    parameter C = 4, parameter PE = 1,
    parameter A_BITS = 6, parameter A_E = 3, parameter A_SIGNED = 1,
    parameter B_BITS = 6, parameter B_E = 3, parameter B_SIGNED = 1,
    parameter signed [63:0] K0 = 1, parameter signed [63:0] K1 = 1,
    parameter ACC_BITS = 24, parameter N_THRES = 3, parameter O_BITS = 4, parameter NO_ACT = 0,
    parameter [C-1:0] SIGNS = 0,
    parameter THRESH_FILE = "thresholds.hex",
    parameter CODE_FILE = "codes.hex"
) (
    input  wire                 ap_clk,
    input  wire                 ap_rst_n,
    input  wire [PE*A_BITS-1:0] in0_V_TDATA,
    input  wire                 in0_V_TVALID,
    output wire                 in0_V_TREADY,
    input  wire [PE*B_BITS-1:0] in1_V_TDATA,
    input  wire                 in1_V_TVALID,
    output wire                 in1_V_TREADY,
    output reg  [PE*O_BITS-1:0] out0_V_TDATA,
    output reg                  out0_V_TVALID,
    input  wire                 out0_V_TREADY
);
    localparam CF = C / PE;
    localparam CFW = (CF > 1) ? $clog2(CF) : 1;
    localparam CW = $clog2(N_THRES + 1);
    localparam DWA = (A_E == 0) ? (A_SIGNED ? A_BITS : A_BITS + 1) : ((1 << A_E) + A_BITS - 1 - A_E);
    localparam DWB = (B_E == 0) ? (B_SIGNED ? B_BITS : B_BITS + 1) : ((1 << B_E) + B_BITS - 1 - B_E);
    localparam W = ACC_BITS + 1;
    reg [N_THRES*W-1:0] tmem [0:(NO_ACT ? 1 : C)-1];
    reg [O_BITS-1:0] cmem [0:(NO_ACT ? 1 : N_THRES+1)-1];
    initial begin
        if (!NO_ACT) begin
            $readmemh(THRESH_FILE, tmem);
            $readmemh(CODE_FILE, cmem);
        end
    end
    reg [CFW-1:0] cf;
    wire out_free = !out0_V_TVALID || out0_V_TREADY;
    wire fire = in0_V_TVALID && in1_V_TVALID && out_free;
    assign in0_V_TREADY = in1_V_TVALID && out_free;
    assign in1_V_TREADY = in0_V_TVALID && out_free;
    wire signed [W-1:0] k0 = K0;
    wire signed [W-1:0] k1 = K1;
    wire [PE*O_BITS-1:0] result;
    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            wire signed [DWA-1:0] va;
            wire signed [DWB-1:0] vb;
            mf_decode #(.BITS(A_BITS), .E(A_E), .SIGNED(A_SIGNED)) da (.code(in0_V_TDATA[p*A_BITS +: A_BITS]), .value(va));
            mf_decode #(.BITS(B_BITS), .E(B_E), .SIGNED(B_SIGNED)) db (.code(in1_V_TDATA[p*B_BITS +: B_BITS]), .value(vb));
            wire signed [W-1:0] wa = va;
            wire signed [W-1:0] wb = vb;
            wire signed [W-1:0] acc = k0 * wa + k1 * wb;
            if (NO_ACT) begin : g_acc
                assign result[p*O_BITS +: O_BITS] = acc[O_BITS-1:0];
            end else begin : g_thr
                wire [CFW+8:0] ch = cf * PE + p;
                wire signed [W-1:0] u = SIGNS[ch] ? -acc : acc;
                wire [CW-1:0] cnt;
                mf_threshold #(.ACC_BITS(W), .N(N_THRES), .OUT_BITS(CW)) thr (.acc(u), .thresholds(tmem[ch]),
                                                                              .count(cnt));
                assign result[p*O_BITS +: O_BITS] = cmem[cnt];
            end
        end
    endgenerate
    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            cf <= 0;
            out0_V_TVALID <= 1'b0;
        end else begin
            if (out0_V_TVALID && out0_V_TREADY) out0_V_TVALID <= 1'b0;
            if (fire) begin
                out0_V_TDATA <= result;
                out0_V_TVALID <= 1'b1;
                cf <= (cf == CF - 1) ? 0 : cf + 1'b1;
            end
        end
    end
endmodule
