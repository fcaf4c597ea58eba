// minifinn MinifloatThresholding, RTL backend (Verilog-2005; needs custom_ops/mac/mf_mac.v for mf_threshold).
//
// PE accumulators (ACC_BITS two's complement each, element 0 in the LSBs) per input word; channel fold cf = word
// index mod C/PE. Channel ch = cf*PE + p: u = SIGNS[ch] ? -acc : acc (ACC_BITS + 1 bits, so negation cannot
// overflow), count = #{i : u >= T[ch][i]} (THRESH_FILE: word ch of ACC_BITS + 1 bit thresholds, T_0 in the LSBs),
// output code = CODE_FILE[count]. One word in, one word out, AXI-stream valid/ready.
module minifloat_thresholding #(
    parameter C = 4, parameter PE = 2, parameter ACC_BITS = 16, parameter N_THRES = 3, parameter O_BITS = 4,
    parameter [C-1:0] SIGNS = 0,
    parameter THRESH_FILE = "thresholds.hex",
    parameter CODE_FILE = "codes.hex"
) (
    input  wire                   ap_clk,
    input  wire                   ap_rst_n,
    input  wire [PE*ACC_BITS-1:0] in0_V_TDATA,
    input  wire                   in0_V_TVALID,
    output wire                   in0_V_TREADY,
    output reg  [PE*O_BITS-1:0]   out0_V_TDATA,
    output reg                    out0_V_TVALID,
    input  wire                   out0_V_TREADY
);
    localparam CF = C / PE;
    localparam CFW = (CF > 1) ? $clog2(CF) : 1;
    localparam CW = $clog2(N_THRES + 1);
    reg [N_THRES*(ACC_BITS+1)-1:0] tmem [0:C-1];
    reg [O_BITS-1:0] cmem [0:N_THRES];
    initial begin
        $readmemh(THRESH_FILE, tmem);
        $readmemh(CODE_FILE, cmem);
    end
    reg [CFW-1:0] cf;
    wire out_free = !out0_V_TVALID || out0_V_TREADY;
    assign in0_V_TREADY = out_free;
    wire [PE*O_BITS-1:0] result;
    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            wire signed [ACC_BITS-1:0] acc = in0_V_TDATA[p*ACC_BITS +: ACC_BITS];
            wire [CFW+8:0] ch = cf * PE + p;
            wire signed [ACC_BITS:0] wide = {acc[ACC_BITS-1], acc};
            wire signed [ACC_BITS:0] u = SIGNS[ch] ? -wide : wide;
            wire [CW-1:0] cnt;
            mf_threshold #(.ACC_BITS(ACC_BITS + 1), .N(N_THRES), .OUT_BITS(CW))
                thr (.acc(u), .thresholds(tmem[ch]), .count(cnt));
            assign result[p*O_BITS +: O_BITS] = cmem[cnt];
        end
    endgenerate
    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            cf <= 0;
            out0_V_TVALID <= 1'b0;
        end else begin
            if (out0_V_TVALID && out0_V_TREADY) out0_V_TVALID <= 1'b0;
            if (in0_V_TVALID && out_free) begin
                out0_V_TDATA <= result;
                out0_V_TVALID <= 1'b1;
                cf <= (cf == CF - 1) ? 0 : cf + 1'b1;
            end
        end
    end
endmodule
