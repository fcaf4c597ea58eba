// minifinn MinifloatGlobalAccPool, RTL backend (Verilog-2005): exact per-channel sum of a code stream over NPIX
// pixels (contract in custom_ops/minifloat_global_acc_pool.py). Codes are decoded to the format's integers with the
// MAC library's mf_decode; one ACC_BITS accumulator per channel (memory of CF words), emitted with the last pixel.
module minifloat_global_acc_pool #(
    parameter NPIX = 4, parameter C = 1, parameter PE = 1, parameter BITS = 6, parameter E = 3,
    parameter SIGNED = 1, parameter ACC_BITS = 16
) (
    input  wire                   ap_clk,
    input  wire                   ap_rst_n,
    input  wire [PE*BITS-1:0]     in0_V_TDATA,
    input  wire                   in0_V_TVALID,
    output wire                   in0_V_TREADY,
    output reg  [PE*ACC_BITS-1:0] out0_V_TDATA,
    output reg                    out0_V_TVALID,
    input  wire                   out0_V_TREADY
);
    localparam CF = C / PE;
    localparam DW = (E == 0) ? (SIGNED ? BITS : BITS + 1) : ((1 << E) + BITS - 1 - E);

    reg [PE*ACC_BITS-1:0] acc [0:CF-1];
    reg [31:0] pix, cf;
    wire last = (pix == NPIX - 1);
    wire out_free = !out0_V_TVALID || out0_V_TREADY;
    assign in0_V_TREADY = ap_rst_n && (!last || out_free);
    wire take = in0_V_TVALID && in0_V_TREADY;

    wire [PE*ACC_BITS-1:0] prev = acc[cf];
    wire [PE*ACC_BITS-1:0] sum;
    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            wire signed [DW-1:0] v;
            mf_decode #(.BITS(BITS), .E(E), .SIGNED(SIGNED)) dec (.code(in0_V_TDATA[p*BITS +: BITS]), .value(v));
            wire signed [ACC_BITS-1:0] base = (pix == 0) ? {ACC_BITS{1'b0}} : $signed(prev[p*ACC_BITS +: ACC_BITS]);
            assign sum[p*ACC_BITS +: ACC_BITS] = base + v;
        end
    endgenerate

    always @(posedge ap_clk) begin
        if (take && !last) acc[cf] <= sum;
        if (!ap_rst_n) begin
            pix <= 0; cf <= 0;
            out0_V_TVALID <= 1'b0;
        end else begin
            if (out0_V_TVALID && out0_V_TREADY) out0_V_TVALID <= 1'b0;
            if (take) begin
                if (last) begin
                    out0_V_TDATA <= sum;
                    out0_V_TVALID <= 1'b1;
                end
                if (cf == CF - 1) begin
                    cf <= 0;
                    pix <= last ? 0 : pix + 1;
                end else begin
                    cf <= cf + 1;
                end
            end
        end
    end
endmodule
