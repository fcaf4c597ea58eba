// minifinn MAC library (Verilog-2005; synthesizable by Yosys synth_xilinx and Vivado).
//
// One library for minifloats and integers, so their costs compare fairly.
// Operand parameters (per operand X in {A, B}):
//   X_BITS   total code bits (sign + exponent + mantissa for minifloats)
//   X_E      exponent bits; 0 means an integer operand
//   X_SIGNED integers only: 1 = two's complement, 0 = unsigned (minifloats are always signed)
// Integer domain: a minifloat code s|e|f (M = BITS-1-E mantissa bits, M >= 1) decodes to the signed integer
//   (-1)^s * (f + [e>0]*2^M) * 2^(max(e,1)-1)     (value = int * 2^(1-bias-M); the bias is only a scale)
// and an integer code to itself. Products of decoded operands are exact; accumulation is exact (Kulisch) in
// ACC_BITS bits, which the caller sizes (compiler.numerics.accumulator_bits / accumulator_bits_from_weights).
//
// Modules
//   mf_decode   #(BITS, E, SIGNED)                      code -> signed value [DW-1:0]
//   mf_split    #(BITS, E, SIGNED)                      code -> signed significand [SW-1:0], shift
//   mf_mul      #(A_BITS, A_E, A_SIGNED, B_BITS, B_E, B_SIGNED)   a, b -> signed product [PW-1:0]
//   mf_mac      #(A_*, B_*, ACC_BITS)                   clk, rst, en, clear, a, b -> acc (registered)
//   mf_dotp     #(SIMD, A_*, B_*, ACC_BITS)             SIMD code pairs -> adder tree -> acc (registered)
//   mf_threshold #(ACC_BITS, N, OUT_BITS)               acc, N ascending thresholds -> count of T_i <= acc
//   mf_count_to_code #(N_VALUES, OUT_BITS, CODE_BITS, TABLE)   count -> output code (ROM)
// Derived widths (parameters with computed defaults: never override them):
//   DW = 2^E + M for minifloats, BITS (+1 if unsigned) for integers; PW = DW_A + DW_B.
//   mf_dotp: tree width TW = PW + clog2(SIMD).
// Control of mf_mac / mf_dotp: on a rising clk edge with en=1, acc <= (clear ? 0 : acc) + sum; rst clears acc.

module mf_decode #(
    parameter BITS = 6,
    parameter E = 3,
    parameter SIGNED = 1,
    parameter DW = (E == 0) ? (SIGNED ? BITS : BITS + 1) : ((1 << E) + BITS - 1 - E)
) (
    input  wire [BITS-1:0]      code,
    output wire signed [DW-1:0] value
);
    generate
        if (E == 0) begin : g_int
            if (SIGNED) begin : g_s
                assign value = $signed(code);
            end else begin : g_u
                assign value = $signed({1'b0, code});
            end
        end else begin : g_fp
            localparam M = BITS - 1 - E;
            wire          s = code[BITS-1];
            wire [E-1:0]  e = code[BITS-2:M];
            wire [M-1:0]  f = code[M-1:0];
            wire [M:0]    sig = {(e != 0), f};
            wire [E-1:0]  shift = (e == 0) ? {E{1'b0}} : e - 1'b1;
            wire [DW-2:0] mag = {{(DW-2-M){1'b0}}, sig} << shift;
            assign value = s ? -$signed({1'b0, mag}) : $signed({1'b0, mag});
        end
    endgenerate
endmodule

module mf_split #(
    parameter BITS = 6,
    parameter E = 3,
    parameter SIGNED = 1,
    parameter SW = (E == 0) ? (SIGNED ? BITS : BITS + 1) : (BITS - E + 1),
    parameter SHW = (E == 0) ? 1 : E
) (
    input  wire [BITS-1:0]      code,
    output wire signed [SW-1:0] sig,    // signed significand: +-(f + [e>0]*2^M), or the integer itself
    output wire [SHW-1:0]       shift   // max(e,1) - 1 (0 for integers): value_int = sig << shift
);
    generate
        if (E == 0) begin : g_int
            if (SIGNED) begin : g_s
                assign sig = $signed(code);
            end else begin : g_u
                assign sig = $signed({1'b0, code});
            end
            assign shift = 1'b0;
        end else begin : g_fp
            localparam M = BITS - 1 - E;
            wire         s = code[BITS-1];
            wire [E-1:0] e = code[BITS-2:M];
            wire [M:0]   mag = {(e != 0), code[M-1:0]};
            assign sig = s ? -$signed({1'b0, mag}) : $signed({1'b0, mag});
            assign shift = (e == 0) ? {E{1'b0}} : e - 1'b1;
        end
    endgenerate
endmodule

// Exact product: multiply the short significands ((M+1) bits for minifloats), then shift by the exponent sum.
module mf_mul #(
    parameter A_BITS = 6, parameter A_E = 3, parameter A_SIGNED = 1,
    parameter B_BITS = 6, parameter B_E = 3, parameter B_SIGNED = 1,
    parameter DWA = (A_E == 0) ? (A_SIGNED ? A_BITS : A_BITS + 1) : ((1 << A_E) + A_BITS - 1 - A_E),
    parameter DWB = (B_E == 0) ? (B_SIGNED ? B_BITS : B_BITS + 1) : ((1 << B_E) + B_BITS - 1 - B_E),
    parameter PW = DWA + DWB
) (
    input  wire [A_BITS-1:0]    a,
    input  wire [B_BITS-1:0]    b,
    output wire signed [PW-1:0] p
);
    localparam SWA = (A_E == 0) ? (A_SIGNED ? A_BITS : A_BITS + 1) : (A_BITS - A_E + 1);
    localparam SWB = (B_E == 0) ? (B_SIGNED ? B_BITS : B_BITS + 1) : (B_BITS - B_E + 1);
    localparam SHA = (A_E == 0) ? 1 : A_E;
    localparam SHB = (B_E == 0) ? 1 : B_E;
    localparam SHS = ((SHA > SHB) ? SHA : SHB) + 1;
    wire signed [SWA-1:0] sa;
    wire signed [SWB-1:0] sb;
    wire [SHA-1:0] ha;
    wire [SHB-1:0] hb;
    mf_split #(.BITS(A_BITS), .E(A_E), .SIGNED(A_SIGNED)) da (.code(a), .sig(sa), .shift(ha));
    mf_split #(.BITS(B_BITS), .E(B_E), .SIGNED(B_SIGNED)) db (.code(b), .sig(sb), .shift(hb));
    wire signed [SWA+SWB-1:0] sp = sa * sb;
    wire signed [PW-1:0] spx = sp;
    wire [SHS-1:0] sh = ha + hb;
    assign p = spx <<< sh;
endmodule

// A single MAC is the SIMD = 1 dot product.
module mf_mac #(
    parameter A_BITS = 6, parameter A_E = 3, parameter A_SIGNED = 1,
    parameter B_BITS = 6, parameter B_E = 3, parameter B_SIGNED = 1,
    parameter ACC_BITS = 32
) (
    input  wire                       clk,
    input  wire                       rst,
    input  wire                       en,
    input  wire                       clear,
    input  wire [A_BITS-1:0]          a,
    input  wire [B_BITS-1:0]          b,
    output wire signed [ACC_BITS-1:0] acc
);
    mf_dotp #(.SIMD(1), .A_BITS(A_BITS), .A_E(A_E), .A_SIGNED(A_SIGNED), .B_BITS(B_BITS), .B_E(B_E),
              .B_SIGNED(B_SIGNED), .ACC_BITS(ACC_BITS))
        dot (.clk(clk), .rst(rst), .en(en), .clear(clear), .a(a), .b(b), .acc(acc));
endmodule

module mf_dotp #(
    parameter SIMD = 8,
    parameter A_BITS = 6, parameter A_E = 3, parameter A_SIGNED = 1,
    parameter B_BITS = 6, parameter B_E = 3, parameter B_SIGNED = 1,
    parameter ACC_BITS = 32
) (
    input  wire                       clk,
    input  wire                       rst,
    input  wire                       en,
    input  wire                       clear,
    input  wire [SIMD*A_BITS-1:0]     a,
    input  wire [SIMD*B_BITS-1:0]     b,
    output reg  signed [ACC_BITS-1:0] acc
);
    localparam DWA = (A_E == 0) ? (A_SIGNED ? A_BITS : A_BITS + 1) : ((1 << A_E) + A_BITS - 1 - A_E);
    localparam DWB = (B_E == 0) ? (B_SIGNED ? B_BITS : B_BITS + 1) : ((1 << B_E) + B_BITS - 1 - B_E);
    localparam PW = DWA + DWB;
    localparam TW = PW + ((SIMD > 1) ? $clog2(SIMD) : 0);
    // Heap-ordered adder tree: leaves SIMD-1 .. 2*SIMD-2, node i = node[2i+1] + node[2i+2].
    wire signed [TW-1:0] node [0:2*SIMD-2] /* verilator split_var */;  // one variable per element: no false loop
    genvar i;
    generate
        for (i = 0; i < SIMD; i = i + 1) begin : g_leaf
            wire signed [PW-1:0] p;
            mf_mul #(.A_BITS(A_BITS), .A_E(A_E), .A_SIGNED(A_SIGNED), .B_BITS(B_BITS), .B_E(B_E), .B_SIGNED(B_SIGNED))
                mul (.a(a[i*A_BITS +: A_BITS]), .b(b[i*B_BITS +: B_BITS]), .p(p));
            assign node[SIMD - 1 + i] = p;
        end
        for (i = 0; i < SIMD - 1; i = i + 1) begin : g_add
            assign node[i] = node[2*i+1] + node[2*i+2];
        end
    endgenerate
    always @(posedge clk) begin
        if (rst) acc <= {ACC_BITS{1'b0}};
        else if (en) acc <= (clear ? $signed({ACC_BITS{1'b0}}) : acc) + node[0];
    end
endmodule

module mf_threshold #(
    parameter ACC_BITS = 16,
    parameter N = 3,
    parameter OUT_BITS = 2
) (
    input  wire signed [ACC_BITS-1:0] acc,
    input  wire [N*ACC_BITS-1:0]      thresholds,   // signed, ascending, T_0 in the LSBs
    output reg  [OUT_BITS-1:0]        count
);
    integer k;
    always @* begin
        count = {OUT_BITS{1'b0}};
        for (k = 0; k < N; k = k + 1)
            if (acc >= $signed(thresholds[k*ACC_BITS +: ACC_BITS])) count = count + 1'b1;
    end
endmodule

module mf_count_to_code #(
    parameter N_VALUES = 4,
    parameter OUT_BITS = 2,
    parameter CODE_BITS = 4,
    parameter [N_VALUES*CODE_BITS-1:0] TABLE = 0   // code of the count-th smallest value, entry 0 in the LSBs
) (
    input  wire [OUT_BITS-1:0]  count,
    output wire [CODE_BITS-1:0] code
);
    assign code = TABLE[count*CODE_BITS +: CODE_BITS];
endmodule
