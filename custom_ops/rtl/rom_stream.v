// minifinn mf_rom_stream (Verilog-2005): streams a constant frame of WORDS words from a ROM (FILE, $readmemh), over
// and over, as an AXI-stream source: used for a constant operand of a two-input op (a ViT's positional embedding
// into MinifloatAdd), so the operand costs a ROM, not a stream from the host.
module mf_rom_stream #(parameter WIDTH = 8, parameter WORDS = 1, parameter FILE = "const.hex") (
    input  wire             clk,
    input  wire             rst_n,
    output wire [WIDTH-1:0] out_data,
    output wire             out_valid,
    input  wire             out_ready
);
    reg [WIDTH-1:0] rom [0:WORDS-1];
    initial $readmemh(FILE, rom);
    reg [31:0] addr;
    assign out_valid = rst_n;
    assign out_data = rom[addr];
    always @(posedge clk) begin
        if (!rst_n) addr <= 0;
        else if (out_ready) addr <= (addr == WORDS - 1) ? 0 : addr + 1;
    end
endmodule
