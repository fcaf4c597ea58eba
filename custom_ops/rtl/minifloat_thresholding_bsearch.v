// minifloat MinifloatThresholding, "bsearch" style (Verilog-2005; needs mf_requant_lib.v): FINN's pipelined binary
// search over sorted thresholds (finn-rtllib/thresholding), with minifinn's stream words and output codes.
//
// PE accumulators (ACC_BITS two's complement each, element 0 in the LSBs) per input word; channel fold cf = word
// index mod C/PE, channel ch = cf*PE + p. u = SIGNS[ch] ? -acc : acc (K = ACC_BITS + 1 bits, so the negation cannot
// overflow). The thresholds of a channel, padded to 2^M - 1 (M = clog2(N_THRES + 1)) with a value no u reaches, are
// searched in M stages, one per bit of the count, most significant first: stage s compares u with the threshold
// T[b * 2^(M-s) + 2^(M-s-1) - 1] chosen by the s bits b decided so far, and appends the bit (T <= u). So
// count = #{i : T[ch][i] <= u}, the count of the parallel comparators, and the output code is CODE_FILE[count].
// Each lane's stage s reads its own memory of CF * 2^s thresholds at address cf * 2^s + b (a registered read, so
// block RAM works): the hex file <THRESH_PREFIX>_p<lane, 4 hex digits>_s<stage, 2 hex digits>.hex; bit s of
// BLOCK_STAGES puts stage s in block RAM, else in distributed ROM. The pipeline runs free; mf_pipe_shell gives the
// AXI-stream handshake: latency M + 2 cycles, one word per cycle.
module minifloat_thresholding_bsearch #(
    parameter C = 4, parameter PE = 2, parameter ACC_BITS = 16, parameter N_THRES = 3, parameter O_BITS = 4,
    parameter [C-1:0] SIGNS = 0,
    parameter THRESH_PREFIX = "bsearch",
    parameter CODE_FILE = "codes.hex",
    parameter BLOCK_STAGES = 0
) (
    input  wire                   ap_clk,
    input  wire                   ap_rst_n,
    input  wire [PE*ACC_BITS-1:0] in0_V_TDATA,
    input  wire                   in0_V_TVALID,
    output wire                   in0_V_TREADY,
    output wire [PE*O_BITS-1:0]   out0_V_TDATA,
    output wire                   out0_V_TVALID,
    input  wire                   out0_V_TREADY
);
    localparam K = ACC_BITS + 1;
    localparam M = $clog2(N_THRES + 1);
    localparam CF = C / PE;
    localparam CFW = (CF > 1) ? $clog2(CF) : 1;

    // one hexadecimal digit, lower case (file names of the per-lane memories)
    function [7:0] hexdigit;
        input integer v;
        hexdigit = (v % 16 < 10) ? 8'd48 + v % 16 : 8'd87 + v % 16;
    endfunction

    reg [O_BITS-1:0] cmem [0:(1 << M) - 1];
    initial $readmemh(CODE_FILE, cmem);

    wire take = in0_V_TVALID && in0_V_TREADY;
    reg [CFW-1:0] cf;
    always @(posedge ap_clk) begin
        if (!ap_rst_n) cf <= {CFW{1'b0}};
        else if (take) cf <= (cf == CF - 1) ? {CFW{1'b0}} : cf + 1'b1;
    end

    // stage inputs: vs[s], cfs[s] enter stage s (s = 0: the accepted word); vs[M] the search result's valid
    wire [M:0] vs;
    wire [(M+1)*CFW-1:0] cfs;
    assign vs[0] = take;
    assign cfs[CFW-1:0] = cf;
    wire [PE*O_BITS-1:0] codes;
    genvar s, p;
    generate
        for (s = 0; s < M; s = s + 1) begin : g_ctl
            reg v_r;
            reg [CFW-1:0] cf_r;
            always @(posedge ap_clk) begin
                if (!ap_rst_n) v_r <= 1'b0;
                else v_r <= vs[s];
                cf_r <= cfs[s*CFW +: CFW];
            end
            assign vs[s + 1] = v_r;
            assign cfs[(s+1)*CFW +: CFW] = cf_r;
        end

        for (p = 0; p < PE; p = p + 1) begin : g_pe
            wire signed [ACC_BITS-1:0] acc = in0_V_TDATA[p*ACC_BITS +: ACC_BITS];
            wire [CFW+16:0] ch = cf * PE + p;
            wire signed [K-1:0] wide = {acc[ACC_BITS-1], acc};
            // us[s], bs[s]: u and the bits decided so far (s of them, right-aligned) entering stage s
            wire [(M+1)*K-1:0] us;
            wire [(M+1)*M-1:0] bs;
            assign us[K-1:0] = SIGNS[ch] ? -wide : wide;
            assign bs[M-1:0] = {M{1'b0}};
            for (s = 0; s < M; s = s + 1) begin : g_st
                localparam [8*512-1:0] FNAME = {THRESH_PREFIX, "_p", hexdigit(p / 4096), hexdigit(p / 256),
                                               hexdigit(p / 16), hexdigit(p), "_s", hexdigit(s / 16), hexdigit(s),
                                               ".hex"};
                localparam DEPTH = CF << s;
                localparam AW = (DEPTH > 1) ? $clog2(DEPTH) : 1;
                wire [K-1:0] thr;
                wire [CFW+M:0] addr = cfs[s*CFW +: CFW] * (1 << s) + bs[s*M +: M];
                mf_rom #(.W(K), .DEPTH(DEPTH), .FILE(FNAME), .BLOCK((BLOCK_STAGES >> s) & 1)) rom (
                    .clk(ap_clk), .addr(addr[AW-1:0]), .q(thr)
                );
                reg [K-1:0] u_r;
                reg [M-1:0] b_r;
                always @(posedge ap_clk) begin
                    u_r <= us[s*K +: K];
                    b_r <= bs[s*M +: M];
                end
                wire ge = $signed(u_r) >= $signed(thr);
                assign us[(s+1)*K +: K] = u_r;
                assign bs[(s+1)*M +: M] = (b_r << 1) | ge;
            end
            wire [M-1:0] count = bs[M*M +: M];
            assign codes[p*O_BITS +: O_BITS] = cmem[count];
        end
    endgenerate

    mf_pipe_shell #(.W(PE * O_BITS), .LAT(M)) shell (
        .clk(ap_clk), .rst_n(ap_rst_n), .in_valid(in0_V_TVALID), .in_ready(in0_V_TREADY),
        .pipe_valid(vs[M]), .pipe_data(codes),
        .out_data(out0_V_TDATA), .out_valid(out0_V_TVALID), .out_ready(out0_V_TREADY)
    );
endmodule
