// minifinn MinifloatLUT, RTL backend (Verilog-2005): PE lanes, each looks its input code up in a 2^I_BITS-entry
// ROM of output codes (TABLE_FILE: entry c = output code for input code c). One word in, one word out per cycle,
// AXI-stream valid/ready.
module minifloat_lut #(
    parameter PE = 1, parameter I_BITS = 6, parameter O_BITS = 6,
    parameter TABLE_FILE = "table.hex"
) (
    input  wire                 ap_clk,
    input  wire                 ap_rst_n,
    input  wire [PE*I_BITS-1:0] in0_V_TDATA,
    input  wire                 in0_V_TVALID,
    output wire                 in0_V_TREADY,
    output reg  [PE*O_BITS-1:0] out0_V_TDATA,
    output reg                  out0_V_TVALID,
    input  wire                 out0_V_TREADY
);
    reg [O_BITS-1:0] rom [0:(1 << I_BITS) - 1];
    initial $readmemh(TABLE_FILE, rom);
    wire out_free = !out0_V_TVALID || out0_V_TREADY;
    assign in0_V_TREADY = out_free;
    wire [PE*O_BITS-1:0] result;
    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            assign result[p*O_BITS +: O_BITS] = rom[in0_V_TDATA[p*I_BITS +: I_BITS]];
        end
    endgenerate
    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            out0_V_TVALID <= 1'b0;
        end else begin
            if (out0_V_TVALID && out0_V_TREADY) out0_V_TVALID <= 1'b0;
            if (in0_V_TVALID && out_free) begin
                out0_V_TDATA <= result;
                out0_V_TVALID <= 1'b1;
            end
        end
    end
endmodule
