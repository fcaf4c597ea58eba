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
//   mf_sum_acc  #(SIMD, PW, ACC_BITS)                   SIMD products -> adder tree -> acc (registered)
//   mf_mul_packed #(N, A_*, B_*, K, PKW, USE_DSP)       a, N codes b_j -> N products from one multiplier (DSP48)
//   mf_dotp_pe  #(PE, SIMD, A_*, B_*, ACC_BITS, USE_DSP, GROUPS, FIELD, PACK_BITS)
//                                                       PE dot products of one shared activation vector
//   mf_threshold #(ACC_BITS, N, OUT_BITS)               acc, N ascending thresholds -> count of T_i <= acc
//   mf_count_to_code #(N_VALUES, OUT_BITS, CODE_BITS, TABLE)   count -> output code (ROM)
// Derived widths (parameters with computed defaults: never override them):
//   DW = 2^E + M for minifloats, BITS (+1 if unsigned) for integers; PW = DW_A + DW_B.
//   mf_dotp: tree width TW = PW + clog2(SIMD).
// Control of mf_mac / mf_dotp / mf_sum_acc / mf_dotp_pe: on a rising clk edge with en=1,
//   acc <= (clear ? 0 : acc) + sum; rst clears acc.
// Multipliers: mf_mul's are LUTs (use_dsp "no"); mf_mul_packed's are DSP48E1s when USE_DSP = 1 and the product
// has >= 9 bits (Yosys' rule; smaller ones stay LUTs, marked "no"); the packing plan comes from
// custom_ops/mac/packing.py (dsp_packing), which also derives the field arithmetic.

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
    (* use_dsp = "no" *) wire signed [SWA+SWB-1:0] sp = sa * sb;
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
    output wire signed [ACC_BITS-1:0] acc
);
    localparam DWA = (A_E == 0) ? (A_SIGNED ? A_BITS : A_BITS + 1) : ((1 << A_E) + A_BITS - 1 - A_E);
    localparam DWB = (B_E == 0) ? (B_SIGNED ? B_BITS : B_BITS + 1) : ((1 << B_E) + B_BITS - 1 - B_E);
    localparam PW = DWA + DWB;
    wire [SIMD*PW-1:0] prods;
    genvar i;
    generate
        for (i = 0; i < SIMD; i = i + 1) begin : g_leaf
            mf_mul #(.A_BITS(A_BITS), .A_E(A_E), .A_SIGNED(A_SIGNED), .B_BITS(B_BITS), .B_E(B_E), .B_SIGNED(B_SIGNED))
                mul (.a(a[i*A_BITS +: A_BITS]), .b(b[i*B_BITS +: B_BITS]), .p(prods[i*PW +: PW]));
        end
    endgenerate
    mf_sum_acc #(.SIMD(SIMD), .PW(PW), .ACC_BITS(ACC_BITS))
        sum (.clk(clk), .rst(rst), .en(en), .clear(clear), .p(prods), .acc(acc));
endmodule

// SIMD signed products of PW bits (product i in bits [i*PW, (i+1)*PW)) -> exact adder tree -> accumulator.
module mf_sum_acc #(
    parameter SIMD = 8,
    parameter PW = 12,
    parameter ACC_BITS = 32
) (
    input  wire                       clk,
    input  wire                       rst,
    input  wire                       en,
    input  wire                       clear,
    input  wire [SIMD*PW-1:0]         p,
    output reg  signed [ACC_BITS-1:0] acc
);
    localparam TW = PW + ((SIMD > 1) ? $clog2(SIMD) : 0);
    // Heap-ordered adder tree: leaves SIMD-1 .. 2*SIMD-2, node i = node[2i+1] + node[2i+2].
    wire signed [TW-1:0] node [0:2*SIMD-2] /* verilator split_var */;  // one variable per element: no false loop
    genvar i;
    generate
        for (i = 0; i < SIMD; i = i + 1) begin : g_leaf
            wire signed [PW-1:0] pi = p[i*PW +: PW];
            assign node[SIMD - 1 + i] = pi;
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

// N exact products a * b_j (j < N) from one multiplier: the N codes b_j share the operand a (the PE output channels
// of one SIMD lane in an MVAU). The multiplier's operands are the signed significands sa, sb_j (mf_split), or with
// DEC_A / DEC_B = 1 the decoded values (mf_decode: the exponent shift done by the multiplier). With K-bit fields
//   B = sum_j ob_j * 2^(j*K)                 (PKW bits, <= 25: the DSP48E1's A port; oa <= 18 bits its B port)
//   P = oa * B + C,  C = sum_{j<N-1} 2^(j*K + K-1)
// every product oa*ob_j lies in [-2^(K-1), 2^(K-1)), so field j < N-1 of P holds oa*ob_j + 2^(K-1) in [0, 2^K):
// the bias (a constant on the DSP48's C port) keeps a negative field from borrowing from the field above, and
//   oa*ob_j = {~P[j*K+K-1], P[j*K +: K-1]} (j < N-1),   oa*ob_{N-1} = P[(N-1)*K +: K]   (signed K bits).
// Each product is then shifted by the exponents the multiplier did not apply (ha unless DEC_A, hb_j unless DEC_B).
// Derivation and plan: custom_ops/mac/packing.py. N = 1 multiplies the two operands; with DEC_A = DEC_B = 0 and a
// product below 9 bits (no DSP48) that is mf_mul. USE_DSP = 1 marks the multiplier use_dsp "yes" when its product has
// >= 9 bits.
module mf_mul_packed #(
    parameter N = 2,
    parameter A_BITS = 6, parameter A_E = 3, parameter A_SIGNED = 1,
    parameter B_BITS = 6, parameter B_E = 3, parameter B_SIGNED = 1,
    parameter K = 8,                      // field bits: every product oa*ob_j fits K signed bits
    parameter PKW = 16,                   // packed operand bits (N > 1)
    parameter DEC_A = 0, parameter DEC_B = 0,
    parameter USE_DSP = 1,
    parameter DWA = (A_E == 0) ? (A_SIGNED ? A_BITS : A_BITS + 1) : ((1 << A_E) + A_BITS - 1 - A_E),
    parameter DWB = (B_E == 0) ? (B_SIGNED ? B_BITS : B_BITS + 1) : ((1 << B_E) + B_BITS - 1 - B_E),
    parameter PW = DWA + DWB
) (
    input  wire [A_BITS-1:0]   a,
    input  wire [N*B_BITS-1:0] b,
    output wire [N*PW-1:0]     p
);
    localparam SWA = (A_E == 0) ? (A_SIGNED ? A_BITS : A_BITS + 1) : (A_BITS - A_E + 1);
    localparam SWB = (B_E == 0) ? (B_SIGNED ? B_BITS : B_BITS + 1) : (B_BITS - B_E + 1);
    localparam SHA = (A_E == 0) ? 1 : A_E;
    localparam SHB = (B_E == 0) ? 1 : B_E;
    localparam SHS = ((SHA > SHB) ? SHA : SHB) + 1;
    localparam OWA = DEC_A ? DWA : SWA;                 // multiplier operand widths
    localparam OWB = DEC_B ? DWB : SWB;
    localparam MW = (N > 1) ? PKW + OWA : OWA + OWB;    // multiplier product bits
    localparam DSP = USE_DSP && (MW >= 9);
    genvar j;
    generate
        if (N == 1 && !DSP && !DEC_A && !DEC_B) begin : g_lut   // too small for a DSP48: the LUT product
            mf_mul #(.A_BITS(A_BITS), .A_E(A_E), .A_SIGNED(A_SIGNED), .B_BITS(B_BITS), .B_E(B_E), .B_SIGNED(B_SIGNED))
                mul (.a(a), .b(b), .p(p));
        end else begin : g_mul
            wire signed [SWA-1:0] sa;
            wire [SHA-1:0] ha;
            wire [N*SWB-1:0] sb;
            wire [N*SHB-1:0] hb;
            wire signed [OWA-1:0] oa;
            wire [N*OWB-1:0] ob;
            mf_split #(.BITS(A_BITS), .E(A_E), .SIGNED(A_SIGNED)) sa_ (.code(a), .sig(sa), .shift(ha));
            if (DEC_A) begin : g_deca
                mf_decode #(.BITS(A_BITS), .E(A_E), .SIGNED(A_SIGNED)) da (.code(a), .value(oa));
            end else begin : g_siga
                assign oa = sa;
            end
            for (j = 0; j < N; j = j + 1) begin : g_split
                mf_split #(.BITS(B_BITS), .E(B_E), .SIGNED(B_SIGNED))
                    sb_ (.code(b[j*B_BITS +: B_BITS]), .sig(sb[j*SWB +: SWB]), .shift(hb[j*SHB +: SHB]));
                if (DEC_B) begin : g_decb
                    mf_decode #(.BITS(B_BITS), .E(B_E), .SIGNED(B_SIGNED)) db (.code(b[j*B_BITS +: B_BITS]),
                                                                               .value(ob[j*OWB +: OWB]));
                end else begin : g_sigb
                    assign ob[j*OWB +: OWB] = sb[j*SWB +: SWB];
                end
            end
            wire signed [MW-1:0] m;
            if (N == 1) begin : g_one
                wire signed [OWB-1:0] ob0 = ob;
                if (DSP) begin : g_dsp
                    (* use_dsp = "yes" *) wire signed [MW-1:0] prod = oa * ob0;
                    assign m = prod;
                end else begin : g_fabric
                    (* use_dsp = "no" *) wire signed [MW-1:0] prod = oa * ob0;
                    assign m = prod;
                end
            end else begin : g_pack
                wire signed [PKW-1:0] part [0:N-1];   // part[j] = sum_{t<=j} ob_t * 2^(t*K)
                wire [MW-1:0] bias;                   // C
                for (j = 0; j < N; j = j + 1) begin : g_field
                    wire signed [OWB-1:0] obj = ob[j*OWB +: OWB];
                    wire signed [PKW-1:0] term = obj;
                    if (j == 0) begin : g_first
                        assign part[0] = term;
                    end else begin : g_next
                        assign part[j] = part[j-1] + (term <<< (j*K));
                    end
                end
                for (j = 0; j < MW; j = j + 1) begin : g_bias
                    assign bias[j] = (j < (N - 1) * K) && (j % K == K - 1);
                end
                if (DSP) begin : g_dsp
                    (* use_dsp = "yes" *) wire signed [MW-1:0] prod = part[N-1] * oa + $signed(bias);
                    assign m = prod;
                end else begin : g_fabric
                    (* use_dsp = "no" *) wire signed [MW-1:0] prod = part[N-1] * oa + $signed(bias);
                    assign m = prod;
                end
            end
            for (j = 0; j < N; j = j + 1) begin : g_prod
                wire signed [K-1:0] f;
                if (N == 1) begin : g_plain
                    assign f = m;
                end else if (j < N - 1) begin : g_biased
                    assign f = {~m[j*K + K - 1], m[j*K +: K - 1]};
                end else begin : g_top
                    assign f = m[j*K +: K];
                end
                wire signed [PW-1:0] fx = f;
                wire [SHS-1:0] sh = (DEC_A ? 0 : ha) + (DEC_B ? 0 : hb[j*SHB +: SHB]);
                assign p[j*PW +: PW] = fx <<< sh;
            end
        end
    endgenerate
endmodule

// PE dot products of one activation vector a (SIMD codes) with PE weight vectors b (code (p*SIMD + i) in bits
// [(p*SIMD+i)*B_BITS, ...), as in the MVAU's weight word), each into its own accumulator acc[p] (bits [p*ACC_BITS, ...)).
// USE_DSP = 0: PE mf_dotp (LUT products). USE_DSP = 1: for every SIMD lane the PE weights are split into GROUPS
// contiguous groups of equal size (+-1, the larger first), each group's products from one mf_mul_packed (FIELD,
// PACK_BITS from custom_ops/mac/packing.py dsp_packing), then per PE the adder tree and accumulator of mf_dotp.
module mf_dotp_pe #(
    parameter PE = 4, parameter SIMD = 8,
    parameter A_BITS = 6, parameter A_E = 3, parameter A_SIGNED = 1,
    parameter B_BITS = 6, parameter B_E = 3, parameter B_SIGNED = 1,
    parameter ACC_BITS = 32,
    parameter USE_DSP = 0,
    parameter GROUPS = 1, parameter FIELD = 8, parameter PACK_BITS = 16,
    parameter DEC_A = 0, parameter DEC_B = 0
) (
    input  wire                   clk,
    input  wire                   rst,
    input  wire                   en,
    input  wire                   clear,
    input  wire [SIMD*A_BITS-1:0] a,
    input  wire [PE*SIMD*B_BITS-1:0] b,
    output wire [PE*ACC_BITS-1:0] acc
);
    localparam DWA = (A_E == 0) ? (A_SIGNED ? A_BITS : A_BITS + 1) : ((1 << A_E) + A_BITS - 1 - A_E);
    localparam DWB = (B_E == 0) ? (B_SIGNED ? B_BITS : B_BITS + 1) : ((1 << B_E) + B_BITS - 1 - B_E);
    localparam PW = DWA + DWB;
    localparam BASE = PE / GROUPS;
    localparam REM = PE % GROUPS;
    genvar p, g, i, j;
    generate
        if (!USE_DSP) begin : g_lut
            for (p = 0; p < PE; p = p + 1) begin : g_pe
                mf_dotp #(.SIMD(SIMD), .A_BITS(A_BITS), .A_E(A_E), .A_SIGNED(A_SIGNED), .B_BITS(B_BITS), .B_E(B_E),
                          .B_SIGNED(B_SIGNED), .ACC_BITS(ACC_BITS))
                    dot (.clk(clk), .rst(rst), .en(en), .clear(clear), .a(a),
                         .b(b[p*SIMD*B_BITS +: SIMD*B_BITS]), .acc(acc[p*ACC_BITS +: ACC_BITS]));
            end
        end else begin : g_dsp
            wire [PE*SIMD*PW-1:0] prods;      // product (p, i) in bits [(p*SIMD+i)*PW, ...)
            for (g = 0; g < GROUPS; g = g + 1) begin : g_grp
                localparam GS = BASE + ((g < REM) ? 1 : 0);
                localparam G0 = g * BASE + ((g < REM) ? g : REM);
                for (i = 0; i < SIMD; i = i + 1) begin : g_lane
                    wire [GS*B_BITS-1:0] bg;
                    wire [GS*PW-1:0] pg;
                    for (j = 0; j < GS; j = j + 1) begin : g_member
                        assign bg[j*B_BITS +: B_BITS] = b[((G0 + j)*SIMD + i)*B_BITS +: B_BITS];
                        assign prods[((G0 + j)*SIMD + i)*PW +: PW] = pg[j*PW +: PW];
                    end
                    mf_mul_packed #(.N(GS), .A_BITS(A_BITS), .A_E(A_E), .A_SIGNED(A_SIGNED), .B_BITS(B_BITS),
                                    .B_E(B_E), .B_SIGNED(B_SIGNED), .K(FIELD), .PKW(PACK_BITS), .DEC_A(DEC_A),
                                    .DEC_B(DEC_B), .USE_DSP(1))
                        mul (.a(a[i*A_BITS +: A_BITS]), .b(bg), .p(pg));
                end
            end
            for (p = 0; p < PE; p = p + 1) begin : g_pe
                mf_sum_acc #(.SIMD(SIMD), .PW(PW), .ACC_BITS(ACC_BITS))
                    sum (.clk(clk), .rst(rst), .en(en), .clear(clear), .p(prods[p*SIMD*PW +: SIMD*PW]),
                         .acc(acc[p*ACC_BITS +: ACC_BITS]));
            end
        end
    endgenerate
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
