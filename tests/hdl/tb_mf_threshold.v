// Testbench for mf_threshold: NVEC accumulator values from acc.hex against thresholds from thr.hex.
module tb;
    parameter ACC_BITS = 16, N = 7, OUT_BITS = 3, NVEC = 64;
    reg [ACC_BITS-1:0] thr_mem [0:N-1];
    reg [ACC_BITS-1:0] acc_mem [0:NVEC-1];
    reg [N*ACC_BITS-1:0] thresholds;
    reg signed [ACC_BITS-1:0] acc;
    wire [OUT_BITS-1:0] count;
    mf_threshold #(.ACC_BITS(ACC_BITS), .N(N), .OUT_BITS(OUT_BITS)) dut (.acc(acc), .thresholds(thresholds), .count(count));
    integer i, fd;
    initial begin
        $readmemh("thr.hex", thr_mem);
        $readmemh("acc.hex", acc_mem);
        for (i = 0; i < N; i = i + 1) thresholds[i*ACC_BITS +: ACC_BITS] = thr_mem[i];
        fd = $fopen("out.txt", "w");
        for (i = 0; i < NVEC; i = i + 1) begin
            acc = acc_mem[i];
            #1 $fdisplay(fd, "%0d", count);
        end
        $fclose(fd);
        $finish;
    end
endmodule
