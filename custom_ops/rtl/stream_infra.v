// minifinn stream plumbing for stitched simulation of a dataflow partition (compiler/stitched_sim.py):
// a FIFO that reports its high-water mark (FIFO sizing) and holds at most `limit` words (set at run time, at most
// DEPTH, its storage: one compiled partition simulates every FIFO depth), a fork (one producer, N consumers; FINN's
// DuplicateStreams) and a bit-level data-width converter (FINN's StreamingDataWidthConverter). Verilog-2005,
// AXI-stream valid/ready; element 0 of a word in its least significant bits, so width conversion is a bit FIFO.

module mf_stream_fifo #(parameter WIDTH = 8, parameter DEPTH = 2) (
    input  wire             clk,
    input  wire             rst_n,
    input  wire [31:0]      limit,
    input  wire [WIDTH-1:0] in_data,
    input  wire             in_valid,
    output wire             in_ready,
    output wire [WIDTH-1:0] out_data,
    output wire             out_valid,
    input  wire             out_ready,
    output reg  [31:0]      max_count
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [31:0] head, tail, count;
    assign in_ready = rst_n && (count < limit);
    assign out_valid = (count != 0);
    assign out_data = mem[head];
    wire push = in_valid && in_ready, pop = out_valid && out_ready;
    always @(posedge clk) begin
        if (push) mem[tail] <= in_data;
        if (!rst_n) begin
            head <= 0; tail <= 0; count <= 0; max_count <= 0;
        end else begin
            if (push) tail <= (tail == DEPTH - 1) ? 0 : tail + 1;
            if (pop) head <= (head == DEPTH - 1) ? 0 : head + 1;
            count <= count + push - pop;
            if (count + push - pop > max_count) max_count <= count + push - pop;
        end
    end
endmodule

module mf_stream_fork #(parameter WIDTH = 8, parameter N = 2) (
    input  wire               clk,
    input  wire               rst_n,
    input  wire [WIDTH-1:0]   in_data,
    input  wire               in_valid,
    output wire               in_ready,
    output wire [N*WIDTH-1:0] out_data,
    output wire [N-1:0]       out_valid,
    input  wire [N-1:0]       out_ready
);
    reg [N-1:0] done;  // consumers that already took the current word
    assign out_data = {N{in_data}};
    assign out_valid = {N{in_valid}} & ~done;
    wire [N-1:0] taken = done | (out_valid & out_ready);
    assign in_ready = rst_n && (&taken);
    always @(posedge clk) begin
        if (!rst_n || (in_valid && in_ready)) done <= {N{1'b0}};
        else done <= taken;
    end
endmodule

module mf_stream_dwc #(parameter IW = 8, parameter OW = 8) (
    input  wire          clk,
    input  wire          rst_n,
    input  wire [IW-1:0] in_data,
    input  wire          in_valid,
    output wire          in_ready,
    output wire [OW-1:0] out_data,
    output wire          out_valid,
    input  wire          out_ready
);
    localparam BW = IW + OW;
    reg [BW-1:0] buffer;  // bits in arrival order, oldest in the LSBs
    reg [31:0] fill;
    assign out_valid = (fill >= OW);
    assign out_data = buffer[OW-1:0];
    wire pop = out_valid && out_ready;
    wire [31:0] after_pop = pop ? fill - OW : fill;
    assign in_ready = rst_n && (after_pop + IW <= BW);
    wire push = in_valid && in_ready;
    wire [BW-1:0] shifted = pop ? (buffer >> OW) : buffer;
    always @(posedge clk) begin
        if (!rst_n) begin
            fill <= 0;
            buffer <= {BW{1'b0}};
        end else begin
            buffer <= push ? (shifted | ({{OW{1'b0}}, in_data} << after_pop)) : shifted;
            fill <= after_pop + (push ? IW : 0);
        end
    end
endmodule
