// minifinn MinifloatLayerNorm, RTL backend (Verilog-2005; needs custom_ops/mac/mf_mac.v for mf_decode and
// mf_threshold). Contract: custom_ops/minifloat_layernorm.py. Rows of D codes (D / PE words) flow through three
// stages that work on different rows at the same time:
//   A      read row r+1 into its row buffer slot; S1 += a, S2 += a*a (a = sig << shift: the format's integer as
//          significand and shift, mf_split)
//   H      a shared three-stage pipeline per row: V' = D*S2 - S1^2 + EPS; e = bitlength(V') / 2 and the division's
//          first remainder 2^(2e-2) (0 for e = 0)
//   units  K reciprocal-square-root units, rows assigned round robin. Each computes q = floor(2^(2(R+e)) / V') by
//          restoring division from quotient bit 2R+1 down (every higher quotient bit is 0: 2^(2e-2) < V'), two
//          quotient bits per cycle, and r = isqrt(q) digit by digit, one root bit per cycle from each quotient bit
//          pair of the cycle before (and S1*r along with it, shift and add): R+2 cycles per row
//   C      write row r-1 out: per word z = (sig * (D*r) << shift) - S1*r >>> e, which is (D*a - S1) * r >>> e
//          exactly; NO_ACT = 0: u = SIGNS[c] ? -z : z,
//          code = CODE_FILE[#{k : u >= T[c][k]}]; NO_ACT = 1: z itself (O_BITS-bit two's complement)
// NB row buffer slots hold the rows in flight (A's, H's, the units' and C's), used in order; A waits for a free slot,
// the last word of a row for room in H, H for its unit, C for its row's unit. AXI-stream valid/ready on both sides.
module minifloat_layernorm #(
    parameter D = 16, parameter PE = 1, parameter BITS = 6, parameter E = 3, parameter SIGNED = 1,
    parameter S1W = 16, parameter S2W = 24, parameter VW = 32, parameter NW = 16,
    parameter QW = 19, parameter ZW = 20, parameter R = 16, parameter [VW-1:0] EPS = 1,
    parameter K = 1, parameter NB = 3, parameter NO_ACT = 0,
    parameter N_THRES = 3, parameter O_BITS = 4, parameter [D-1:0] SIGNS = 0,
    parameter THRESH_FILE = "thresholds.hex", parameter CODE_FILE = "codes.hex"
) (
    input  wire               ap_clk,
    input  wire               ap_rst_n,
    input  wire [PE*BITS-1:0] in0_V_TDATA,
    input  wire               in0_V_TVALID,
    output wire               in0_V_TREADY,
    output reg  [PE*O_BITS-1:0] out0_V_TDATA,
    output reg                out0_V_TVALID,
    input  wire               out0_V_TREADY
);
    localparam NF = D / PE;
    localparam DEPTH = NB * NF;
    localparam AB = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    localparam FB = $clog2(NF + 1);
    localparam UB = $clog2(NB + 1);
    localparam KB = (K > 1) ? $clog2(K) : 1;
    localparam EW = $clog2(VW + 1);
    localparam RW = R + 1;           // r < 2^(R+1)
    localparam SRW = R + 2;          // square root remainder <= 2 r
    localparam SB = $clog2(R + 2);   // division steps to go, R+1 .. 0
    localparam PW = NW + RW + 1;     // (D*a - S1) * r, a*D*r and S1*r
    localparam DRW = RW + $clog2(D + 1);  // D*r
    localparam TW = S1W + RW;        // S1*r
    localparam SW = (E == 0) ? (SIGNED ? BITS : BITS + 1) : (BITS - E + 1);  // mf_split's significand
    localparam SHW = (E == 0) ? 1 : E;

    localparam CW = $clog2(N_THRES + 1);

    reg [PE*BITS-1:0] rowbuf [0:DEPTH-1];
    reg [N_THRES*(ZW+1)-1:0] tmem [0:D-1];  // NO_ACT = 0: the output requantizer's thresholds and codes
    reg [O_BITS-1:0] cmem [0:N_THRES];
    genvar p, u;
    integer i;
    generate
        if (!NO_ACT) begin : g_mem
            initial begin
                $readmemh(THRESH_FILE, tmem);
                $readmemh(CODE_FILE, cmem);
            end
        end
    endgenerate

    // ---- A: read a row, sums ----------------------------------------------------------------------------------------
    reg [AB-1:0] wa;                 // write address (rows take the slots in order)
    reg [FB-1:0] fa;                 // word of the row
    reg [UB-1:0] used;               // slots holding a row (from A's first word to C's last)
    reg signed [S1W-1:0] s1a;
    reg signed [S2W-1:0] s2a;
    wire signed [PE*SW-1:0] sig_a;
    wire [PE*SHW-1:0] sh_a;
    reg signed [S1W-1:0] lane_s1;
    reg signed [S2W-1:0] lane_s2;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_deca
            mf_split #(.BITS(BITS), .E(E), .SIGNED(SIGNED)) d (.code(in0_V_TDATA[p*BITS +: BITS]),
                                                                .sig(sig_a[p*SW +: SW]), .shift(sh_a[p*SHW +: SHW]));
        end
    endgenerate
    reg signed [SW-1:0] sg;
    reg signed [2*SW-1:0] sq;
    always @* begin
        lane_s1 = 0;
        lane_s2 = 0;
        for (i = 0; i < PE; i = i + 1) begin
            sg = sig_a[i*SW +: SW];
            sq = sg * sg;
            lane_s1 = lane_s1 + (sg <<< sh_a[i*SHW +: SHW]);
            lane_s2 = lane_s2 + (sq <<< (2 * sh_a[i*SHW +: SHW]));
        end
    end
    wire a_first = (fa == 0);
    wire a_last = (fa == NF - 1);
    wire h1_ready;
    assign in0_V_TREADY = ap_rst_n && (!a_first || used < NB) && (!a_last || h1_ready);
    wire take = in0_V_TVALID && in0_V_TREADY;

    // ---- H: V', e, the first remainder (stalls when its row's unit is busy) -----------------------------------------
    reg h1_v, h2_v, h3_v;
    reg signed [S1W-1:0] h1_s1, h2_s1, h3_s1;
    reg signed [S2W-1:0] h1_s2;
    reg [VW-1:0] h2_vv, h3_vv, h3_rem0;
    reg [EW-1:0] h3_e;
    reg [KB-1:0] hu;                 // unit of the row in h3
    wire [K-1:0] unit_idle, unit_done;
    wire h3_adv = h3_v && unit_idle[hu];
    wire h3_ready = !h3_v || h3_adv;
    wire h2_ready = !h2_v || h3_ready;
    assign h1_ready = !h1_v || h2_ready;
    wire signed [VW+1:0] v_full = $signed(D) * h1_s2 - h1_s1 * h1_s1 + $signed({2'b00, EPS});
    reg [EW-1:0] vbits;
    always @* begin
        vbits = 0;
        for (i = 0; i < VW; i = i + 1) if (h2_vv[i]) vbits = i + 1;
    end
    wire [EW-1:0] e_new = vbits >> 1;
    wire [VW-1:0] one_v = 1;
    wire [VW-1:0] rem0 = (e_new == 0) ? {VW{1'b0}} : one_v << (2 * e_new - 2);

    // ---- units: q = floor(2^(2(R+e)) / V') two bits per cycle, r = isqrt(q) one bit per cycle ----------------------
    wire c_load;
    reg [KB-1:0] cu;                 // unit of the next row C takes
    wire [K*TW-1:0] unit_s1r;
    wire [K*RW-1:0] unit_root;
    wire [K*EW-1:0] unit_e;
    generate
        for (u = 0; u < K; u = u + 1) begin : g_unit
            reg [1:0] st;            // 0 idle, 1 busy, 2 done (until C takes the result)
            reg [VW-1:0] v, rem;
            reg [EW-1:0] e;
            reg signed [S1W-1:0] s1;
            reg [SB-1:0] step;
            reg [1:0] pair;
            reg pv;
            reg [SRW-1:0] srem;
            reg [RW-1:0] root;
            reg signed [TW-1:0] s1r;     // S1 * (the root bits so far)
            // numerator bits: 2^(2(R+e)) has its one bit below quotient bit 2R+1 only for e = 0 (bit 2R)
            wire bin = (e == 0) && (step == R + 1);
            // restoring steps: the difference's sign is the quotient bit
            wire [VW+1:0] r1d = {1'b0, rem, 1'b0} - {2'b00, v};
            wire q1 = !r1d[VW+1];
            wire [VW-1:0] r1b = q1 ? r1d[VW-1:0] : {rem[VW-2:0], 1'b0};
            wire [VW+1:0] r2d = {1'b0, r1b, bin} - {2'b00, v};
            wire q0 = !r2d[VW+1];
            wire [VW-1:0] r2b = q0 ? r2d[VW-1:0] : {r1b[VW-2:0], bin};
            wire [SRW+1:0] sr = {srem, pair};
            wire [SRW+2:0] srd = {1'b0, sr} - {3'b000, root, 2'b01};
            wire sge = !srd[SRW+2];
            always @(posedge ap_clk) begin
                if (!ap_rst_n) begin
                    st <= 2'd0;
                    pv <= 1'b0;
                end else begin
                    case (st)
                        2'd0: if (h3_adv && hu == u) begin
                            st <= 2'd1;
                            v <= h3_vv;
                            rem <= h3_rem0;
                            e <= h3_e;
                            s1 <= h3_s1;
                            step <= R + 1;
                            pv <= 1'b0;
                            srem <= 0;
                            root <= 0;
                            s1r <= 0;
                        end
                        2'd1: begin
                            if (step != 0) begin
                                rem <= r2b;
                                pair <= {q1, q0};
                                step <= step - 1'b1;
                            end
                            pv <= (step != 0);
                            if (pv) begin
                                srem <= sge ? srd[SRW-1:0] : sr[SRW-1:0];
                                root <= {root[RW-2:0], sge};
                                s1r <= (s1r <<< 1) + (sge ? s1 : 0);
                                if (step == 0) st <= 2'd2;
                            end
                        end
                        default: if (c_load && cu == u) st <= 2'd0;
                    endcase
                end
            end
            assign unit_idle[u] = (st == 2'd0);
            assign unit_done[u] = (st == 2'd2);
            assign unit_s1r[u*TW +: TW] = s1r;
            assign unit_root[u*RW +: RW] = root;
            assign unit_e[u*EW +: EW] = e;
        end
    endgenerate

    // ---- C: normalize and requantize (or output z) -------------------------------------------------------------------
    reg c_act;
    reg [FB-1:0] fc;
    reg [AB-1:0] ra;
    reg signed [TW-1:0] s1rc;        // S1*r of the row
    reg [DRW-1:0] drc;               // D*r of the row
    reg [EW-1:0] ec;
    wire [PE*BITS-1:0] word_c = rowbuf[ra];
    wire [PE*O_BITS-1:0] result;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_out
            wire signed [SW-1:0] sig;
            wire [SHW-1:0] sh;
            mf_split #(.BITS(BITS), .E(E), .SIGNED(SIGNED)) d (.code(word_c[p*BITS +: BITS]), .sig(sig), .shift(sh));
            wire signed [SW+DRW:0] t = sig * $signed({1'b0, drc});
            wire signed [PW-1:0] adr = t;
            wire signed [PW-1:0] zs = ((adr <<< sh) - s1rc) >>> ec;
            if (NO_ACT) begin : g_z
                wire signed [O_BITS-1:0] zo = zs;
                assign result[p*O_BITS +: O_BITS] = zo;
            end else begin : g_thr
                wire [31:0] ch = fc * PE + p;
                wire signed [ZW:0] z = zs[ZW:0];
                wire signed [ZW:0] uz = SIGNS[ch] ? -z : z;
                wire [CW-1:0] cnt;
                mf_threshold #(.ACC_BITS(ZW + 1), .N(N_THRES), .OUT_BITS(CW)) thr (.acc(uz), .thresholds(tmem[ch]),
                                                                                 .count(cnt));
                assign result[p*O_BITS +: O_BITS] = cmem[cnt];
            end
        end
    endgenerate
    wire out_free = !out0_V_TVALID || out0_V_TREADY;
    wire c_issue = c_act && out_free;
    wire c_end = c_issue && (fc == NF - 1);
    assign c_load = unit_done[cu] && (!c_act || c_end);

    always @(posedge ap_clk) begin
        if (take) rowbuf[wa] <= in0_V_TDATA;
        if (!ap_rst_n) begin
            wa <= 0; fa <= 0; used <= 0; s1a <= 0; s2a <= 0;
            h1_v <= 1'b0; h2_v <= 1'b0; h3_v <= 1'b0; hu <= 0;
            c_act <= 1'b0; fc <= 0; ra <= 0; cu <= 0; out0_V_TVALID <= 1'b0;
        end else begin
            // A
            if (take) begin
                wa <= (wa == DEPTH - 1) ? 0 : wa + 1'b1;
                if (a_last) begin
                    fa <= 0;
                    s1a <= 0;
                    s2a <= 0;
                end else begin
                    fa <= fa + 1'b1;
                    s1a <= s1a + lane_s1;
                    s2a <= s2a + lane_s2;
                end
            end
            used <= used + (take && a_first) - c_end;
            // H
            if (h1_ready) begin
                h1_v <= take && a_last;
                h1_s1 <= s1a + lane_s1;
                h1_s2 <= s2a + lane_s2;
            end
            if (h2_ready) begin
                h2_v <= h1_v;
                h2_s1 <= h1_s1;
                h2_vv <= v_full[VW-1:0];
            end
            if (h3_ready) begin
                h3_v <= h2_v;
                h3_s1 <= h2_s1;
                h3_vv <= h2_vv;
                h3_e <= e_new;
                h3_rem0 <= rem0;
            end
            if (h3_adv) hu <= (hu == K - 1) ? 0 : hu + 1'b1;
            // C
            if (out0_V_TVALID && out0_V_TREADY) out0_V_TVALID <= 1'b0;
            if (c_issue) begin
                out0_V_TDATA <= result;
                out0_V_TVALID <= 1'b1;
                ra <= (ra == DEPTH - 1) ? 0 : ra + 1'b1;
                fc <= c_end ? 0 : fc + 1'b1;
            end
            if (c_load) begin
                c_act <= 1'b1;
                s1rc <= unit_s1r[cu*TW +: TW];
                drc <= D * unit_root[cu*RW +: RW];
                ec <= unit_e[cu*EW +: EW];
                cu <= (cu == K - 1) ? 0 : cu + 1'b1;
            end else if (c_end) begin
                c_act <= 1'b0;
            end
        end
    end
endmodule
