// AXI-stream testbench of a minifinn RTL node with one input stream ($TOP$ is substituted).
// Sends NIN words from in.hex with random valid gaps, accepts NOUT words with random backpressure, writes them
// (hex, one per line) to out.txt, and reports the cycle count. A watchdog ends a hung simulation.
`timescale 1ns/1ps
module tb;
    parameter IW = 8, OW = 8, NIN = 1, NOUT = 1, SEED = 1, GAPS = 1, WATCHDOG_ADD = 100000;
    reg clk = 0, rst_n = 0;
    reg [IW-1:0] mem [0:NIN-1];
    reg [IW-1:0] idata;
    reg ivalid = 0;
    wire iready;
    wire [OW-1:0] odata;
    wire ovalid;
    reg oready = 0;
    integer sent = 0, got = 0, cycles = 0, fd, seed = SEED;
    $TOP$ dut (.ap_clk(clk), .ap_rst_n(rst_n), .in0_V_TDATA(idata), .in0_V_TVALID(ivalid), .in0_V_TREADY(iready),
               .out0_V_TDATA(odata), .out0_V_TVALID(ovalid), .out0_V_TREADY(oready));
    always #5 clk = ~clk;
    initial begin
        $readmemh("in.hex", mem);
        fd = $fopen("out.txt", "w");
        repeat (2) @(posedge clk);
        rst_n = 1;
    end
    always @(posedge clk) if (rst_n) begin
        cycles <= cycles + 1;
        if (ovalid && oready) begin
            $fdisplay(fd, "%h", odata);
            got = got + 1;
            if (got == NOUT) begin
                $fdisplay(fd, "cycles %0d", cycles);
                $fclose(fd);
                $finish;
            end
        end
        if (ivalid && iready) sent = sent + 1;
        if (!(ivalid && !iready)) begin  // AXI: a word once offered stays until accepted
            ivalid <= (sent < NIN) && (!GAPS || ($random(seed) & 3) != 0);
            idata <= mem[sent];
        end
        oready <= !GAPS || ($random(seed) & 3) != 0;
        if (cycles > 100 * (NIN + NOUT) + WATCHDOG_ADD) begin
            $display("tb: watchdog, sent %0d got %0d", sent, got);
            $fclose(fd);
            $finish;
        end
    end
endmodule
