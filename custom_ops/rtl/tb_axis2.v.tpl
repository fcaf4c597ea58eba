// AXI-stream testbench of a minifinn RTL node with two input streams, in0 and in1 ($TOP$ is substituted).
// Sends NIN words from in.hex on in0 and NIN1 words from in1.hex on in1, each with random valid gaps, accepts NOUT
// words with random backpressure, writes them (hex, one per line) to out.txt and reports the cycle count.
`timescale 1ns/1ps
module tb;
    parameter IW = 8, IW1 = 8, OW = 8, NIN = 1, NIN1 = 1, NOUT = 1, SEED = 1, GAPS = 1, WATCHDOG_ADD = 100000;
    reg clk = 0, rst_n = 0;
    reg [IW-1:0] mem [0:NIN-1];
    reg [IW1-1:0] mem1 [0:NIN1-1];
    reg [IW-1:0] idata;
    reg [IW1-1:0] idata1;
    reg ivalid = 0, ivalid1 = 0;
    wire iready, iready1;
    wire [OW-1:0] odata;
    wire ovalid;
    reg oready = 0;
    integer sent = 0, sent1 = 0, got = 0, cycles = 0, fd, seed = SEED;
    $TOP$ dut (.ap_clk(clk), .ap_rst_n(rst_n), .in0_V_TDATA(idata), .in0_V_TVALID(ivalid), .in0_V_TREADY(iready),
               .in1_V_TDATA(idata1), .in1_V_TVALID(ivalid1), .in1_V_TREADY(iready1),
               .out0_V_TDATA(odata), .out0_V_TVALID(ovalid), .out0_V_TREADY(oready));
    always #5 clk = ~clk;
    initial begin
        $readmemh("in.hex", mem);
        $readmemh("in1.hex", mem1);
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
        if (ivalid1 && iready1) sent1 = sent1 + 1;
        if (!(ivalid && !iready)) begin  // AXI: a word once offered stays until accepted
            ivalid <= (sent < NIN) && (!GAPS || ($random(seed) & 3) != 0);
            idata <= mem[sent];
        end
        if (!(ivalid1 && !iready1)) begin
            ivalid1 <= (sent1 < NIN1) && (!GAPS || ($random(seed) & 3) != 0);
            idata1 <= mem1[sent1];
        end
        oready <= !GAPS || ($random(seed) & 3) != 0;
        if (cycles > 100 * (NIN + NIN1 + NOUT) + WATCHDOG_ADD) begin
            $display("tb: watchdog, sent %0d/%0d got %0d", sent, sent1, got);
            $fclose(fd);
            $finish;
        end
    end
endmodule
