// Testbench for mf_dotp_pe: applies NVEC vectors from codes.hex (one line per vector: {clear, b codes, a codes}
// packed, b code p*SIMD+i), en=1 every cycle, writes the PE accumulators after each edge to out.txt (hex, PE 0 first).
`timescale 1ns/1ps
module tb;
    parameter PE = 4, SIMD = 2, A_BITS = 6, A_E = 3, A_SIGNED = 1, B_BITS = 6, B_E = 3, B_SIGNED = 1;
    parameter ACC_BITS = 32, NVEC = 16, USE_DSP = 1, GROUPS = 1, FIELD = 8, PACK_BITS = 16;
    localparam W = 1 + SIMD * A_BITS + PE * SIMD * B_BITS;
    reg clk = 0, rst = 1, en = 0, clear = 0;
    reg [SIMD*A_BITS-1:0] a;
    reg [PE*SIMD*B_BITS-1:0] b;
    reg [W-1:0] mem [0:NVEC-1];
    wire [PE*ACC_BITS-1:0] acc;
    mf_dotp_pe #(.PE(PE), .SIMD(SIMD), .A_BITS(A_BITS), .A_E(A_E), .A_SIGNED(A_SIGNED), .B_BITS(B_BITS), .B_E(B_E),
                 .B_SIGNED(B_SIGNED), .ACC_BITS(ACC_BITS), .USE_DSP(USE_DSP), .GROUPS(GROUPS), .FIELD(FIELD),
                 .PACK_BITS(PACK_BITS))
        dut (.clk(clk), .rst(rst), .en(en), .clear(clear), .a(a), .b(b), .acc(acc));
    integer i, p, fd;
    always #5 clk = ~clk;
    initial begin
        $readmemh("codes.hex", mem);
        fd = $fopen("out.txt", "w");
        @(posedge clk); #1 rst = 0; en = 1;
        for (i = 0; i < NVEC; i = i + 1) begin
            {clear, b, a} = mem[i];
            @(posedge clk); #1;
            for (p = 0; p < PE; p = p + 1) $fwrite(fd, "%h ", acc[p*ACC_BITS +: ACC_BITS]);
            $fwrite(fd, "\n");
        end
        $fclose(fd);
        $finish;
    end
endmodule
