// Testbench for mf_dotp (and mf_mac when SIMD == 1): applies NVEC vectors from codes.hex (one line per vector:
// {clear, b codes, a codes} packed), en=1 every cycle, writes the accumulator after each edge to out.txt (hex).
`timescale 1ns/1ps
module tb;
    parameter SIMD = 4, A_BITS = 6, A_E = 3, A_SIGNED = 1, B_BITS = 6, B_E = 3, B_SIGNED = 1;
    parameter ACC_BITS = 32, NVEC = 16;
    localparam W = 1 + SIMD * (A_BITS + B_BITS);
    reg clk = 0, rst = 1, en = 0, clear = 0;
    reg [SIMD*A_BITS-1:0] a;
    reg [SIMD*B_BITS-1:0] b;
    reg [W-1:0] mem [0:NVEC-1];
    wire signed [ACC_BITS-1:0] acc, acc_mac;
    mf_dotp #(.SIMD(SIMD), .A_BITS(A_BITS), .A_E(A_E), .A_SIGNED(A_SIGNED), .B_BITS(B_BITS), .B_E(B_E),
              .B_SIGNED(B_SIGNED), .ACC_BITS(ACC_BITS))
        dut (.clk(clk), .rst(rst), .en(en), .clear(clear), .a(a), .b(b), .acc(acc));
    mf_mac #(.A_BITS(A_BITS), .A_E(A_E), .A_SIGNED(A_SIGNED), .B_BITS(B_BITS), .B_E(B_E), .B_SIGNED(B_SIGNED),
             .ACC_BITS(ACC_BITS))
        mac (.clk(clk), .rst(rst), .en(en), .clear(clear), .a(a[A_BITS-1:0]), .b(b[B_BITS-1:0]), .acc(acc_mac));
    integer i, fd;
    always #5 clk = ~clk;
    initial begin
        $readmemh("codes.hex", mem);
        fd = $fopen("out.txt", "w");
        @(posedge clk); #1 rst = 0; en = 1;
        for (i = 0; i < NVEC; i = i + 1) begin
            {clear, b, a} = mem[i];
            @(posedge clk); #1;
            $fdisplay(fd, "%h %h", acc, acc_mac);
        end
        $fclose(fd);
        $finish;
    end
endmodule
