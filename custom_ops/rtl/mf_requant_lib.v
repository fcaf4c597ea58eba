// minifinn requantizer library (Verilog-2005; Icarus, Yosys synth_xilinx, Vivado): the building blocks of the
// pipelined requantizer cores (minifloat_thresholding_bsearch.v, minifloat_requant_convert.v).
//
// Modules
//   mf_pipe_shell #(W, LAT)                 AXI-stream flow control around a free-running pipeline of LAT stages
//   mf_rom #(W, DEPTH, FILE, BLOCK)         ROM with a registered read ($readmemh contents), block or distributed
//   mf_bitlen #(W)                          bit length of an unsigned value (leading-one detection)

// Flow control of FINN's thresholding core (finn-rtllib/thresholding): the pipeline in front of this shell never
// stalls; an input word is accepted (in_ready) only while fewer than LAT + 3 words are pending (accepted and not yet
// taken at out), so the output FIFO of LAT + 2 words (a shift register with a read pointer: SRLs) holds everything
// in flight while out stalls. The pipeline's result (pipe_valid, pipe_data) arrives LAT cycles after the accept.
// in_ready depends on registers only (no combinational path from out_ready); a word takes LAT + 2 cycles from
// accept to out_valid; full rate (one word per cycle) while out_ready stays high.
module mf_pipe_shell #(
    parameter W = 8,
    parameter LAT = 1
) (
    input  wire         clk,
    input  wire         rst_n,
    input  wire         in_valid,
    output wire         in_ready,
    input  wire         pipe_valid,
    input  wire [W-1:0] pipe_data,
    output reg  [W-1:0] out_data,
    output reg          out_valid,
    input  wire         out_ready
);
    localparam CAP = LAT + 3;
    localparam DEPTH = CAP - 1;
    localparam CW = $clog2(CAP + 1);
    localparam AW = $clog2(DEPTH);
    reg [CW-1:0] pending;
    assign in_ready = pending < CAP;
    wire take = in_valid && in_ready;
    wire give = out_valid && out_ready;
    always @(posedge clk) begin
        if (!rst_n) pending <= {CW{1'b0}};
        else if (take != give) pending <= take ? pending + 1'b1 : pending - 1'b1;
    end
    // FIFO: fifo[0] the newest word, fifo[ptr] the oldest; ptr = entries - 1 (-1: empty)
    reg [W-1:0] fifo [0:DEPTH-1];
    reg signed [AW:0] ptr;
    wire avail = !ptr[AW];
    wire load = !out_valid || out_ready;
    integer i;
    always @(posedge clk) begin
        if (pipe_valid) begin
            fifo[0] <= pipe_data;
            for (i = 1; i < DEPTH; i = i + 1) fifo[i] <= fifo[i - 1];
        end
    end
    always @(posedge clk) begin
        if (!rst_n) ptr <= -1;
        else if (pipe_valid != (avail && load)) ptr <= pipe_valid ? ptr + 1'b1 : ptr - 1'b1;
    end
    always @(posedge clk) begin
        if (!rst_n) out_valid <= 1'b0;
        else if (load) begin
            out_valid <= avail;
            out_data <= fifo[ptr[AW-1:0]];
        end
    end
endmodule

// ROM of DEPTH words of W bits from the hex file FILE, read through a register (q = mem[addr] one cycle later, every
// cycle). BLOCK = 1: block RAM (rom_style/ram_style "block"), else distributed (LUT) ROM (rom_style "distributed";
// under Yosys, which predefines YOSYS, "logic": the same LUTs).
module mf_rom #(
    parameter W = 8,
    parameter DEPTH = 2,
    parameter FILE = "rom.hex",
    parameter BLOCK = 0,
    parameter AW = (DEPTH > 1) ? $clog2(DEPTH) : 1   // derived: never override
) (
    input  wire          clk,
    input  wire [AW-1:0] addr,
    output reg  [W-1:0]  q
);
    generate
        if (BLOCK) begin : g_block
            (* rom_style = "block", ram_style = "block" *) reg [W-1:0] mem [0:DEPTH-1];
            initial $readmemh(FILE, mem);
            always @(posedge clk) q <= mem[addr];
        end else begin : g_dist
`ifdef YOSYS
            // Yosys maps LUT RAM only with a write port: a ROM in LUTs is its "logic" style
            (* rom_style = "logic" *) reg [W-1:0] mem [0:DEPTH-1];
`else
            (* rom_style = "distributed", ram_style = "distributed" *) reg [W-1:0] mem [0:DEPTH-1];
`endif
            initial $readmemh(FILE, mem);
            always @(posedge clk) q <= mem[addr];
        end
    endgenerate
endmodule

// Bit length of an unsigned W-bit value (0 for 0): the position of the leading one, plus one.
module mf_bitlen #(
    parameter W = 8,
    parameter LW = $clog2(W + 1)   // derived: never override
) (
    input  wire [W-1:0]  x,
    output reg  [LW-1:0] len
);
    integer i;
    always @* begin
        len = {LW{1'b0}};
        for (i = 0; i < W; i = i + 1)
            if (x[i]) len = i + 1;
    end
endmodule
