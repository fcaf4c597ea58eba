// minifinn MinifloatMaxPool, RTL backend (Verilog-2005): non-overlapping KHxKW max pooling of a channels-last code
// stream (contract in custom_ops/minifloat_maxpool.py). One running maximum per (output column, channel group) for
// the current window row (LUTRAM); pixels outside the last whole window are consumed and dropped. The comparison
// works on the codes: KIND 0 sign-magnitude minifloat (-mag if the sign is set, else mag), 1 signed, 2 unsigned.
module minifloat_maxpool #(
    parameter H = 4, parameter W = 4, parameter C = 1, parameter PE = 1, parameter BITS = 6,
    parameter KH = 2, parameter KW = 2, parameter KIND = 0
) (
    input  wire                 ap_clk,
    input  wire                 ap_rst_n,
    input  wire [PE*BITS-1:0]   in0_V_TDATA,
    input  wire                 in0_V_TVALID,
    output wire                 in0_V_TREADY,
    output reg  [PE*BITS-1:0]   out0_V_TDATA,
    output reg                  out0_V_TVALID,
    input  wire                 out0_V_TREADY
);
    localparam CF = C / PE;
    localparam OH = H / KH, OW = W / KW;

    function signed [BITS:0] key;  // value order of a code
        input [BITS-1:0] code;
        begin
            if (KIND == 0)
                key = code[BITS-1] ? -$signed({2'b00, code[BITS-2:0]}) : $signed({2'b00, code[BITS-2:0]});
            else if (KIND == 1)
                key = $signed({code[BITS-1], code});
            else
                key = $signed({1'b0, code});
        end
    endfunction

    reg [PE*BITS-1:0] row [0:OW*CF-1];
    reg [31:0] h, w, cf, ih, iw, ow;  // ih/iw: position inside the window, ow: window column
    wire in_win = (h < OH * KH) && (w < OW * KW);
    wire first = (ih == 0) && (iw == 0);
    wire emit = in_win && (ih == KH - 1) && (iw == KW - 1);
    wire out_free = !out0_V_TVALID || out0_V_TREADY;
    assign in0_V_TREADY = ap_rst_n && (!emit || out_free);
    wire take = in0_V_TVALID && in0_V_TREADY;

    wire [PE*BITS-1:0] prev = row[ow * CF + cf];
    wire [PE*BITS-1:0] best;
    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            wire [BITS-1:0] a = prev[p*BITS +: BITS];
            wire [BITS-1:0] b = in0_V_TDATA[p*BITS +: BITS];
            assign best[p*BITS +: BITS] = (first || key(b) > key(a)) ? b : a;
        end
    endgenerate

    always @(posedge ap_clk) begin
        if (take && in_win && !emit) row[ow * CF + cf] <= best;
        if (!ap_rst_n) begin
            h <= 0; w <= 0; cf <= 0; ih <= 0; iw <= 0; ow <= 0;
            out0_V_TVALID <= 1'b0;
        end else begin
            if (out0_V_TVALID && out0_V_TREADY) out0_V_TVALID <= 1'b0;
            if (take) begin
                if (emit) begin
                    out0_V_TDATA <= best;
                    out0_V_TVALID <= 1'b1;
                end
                if (cf == CF - 1) begin
                    cf <= 0;
                    if (w == W - 1) begin  // end of an input row
                        w <= 0; iw <= 0; ow <= 0;
                        if (h == H - 1) begin
                            h <= 0; ih <= 0;
                        end else begin
                            h <= h + 1;
                            ih <= (ih == KH - 1) ? 0 : ih + 1;
                        end
                    end else begin
                        w <= w + 1;
                        if (iw == KW - 1) begin
                            iw <= 0;
                            ow <= ow + 1;
                        end else begin
                            iw <= iw + 1;
                        end
                    end
                end else begin
                    cf <= cf + 1;
                end
            end
        end
    end
endmodule
