// minifinn MinifloatReorder, RTL backend (Verilog-2005): a stream permutation (contract in
// custom_ops/minifloat_reorder.py). IDENTITY = 1: wires. Otherwise two frame buffers (ping-pong) of WORDS input
// words: the writer stores words in arrival order, the reader emits OUT_WORDS words in the order of the address ROM
// (ADDR_FILE: per output word an input word address, or bit 31 set and the index of a word of the constant ROM
// CONST_FILE: padding and constants, word 0 zeros). Registered read plus a 4-word output FIFO with credits, as in
// the sliding-window core.
module minifloat_reorder #(
    parameter WORDS = 4, parameter OUT_WORDS = 4, parameter WIDTH = 8, parameter IDENTITY = 0,
    parameter CONST_WORDS = 1, parameter ADDR_FILE = "addr.hex", parameter CONST_FILE = "const.hex"
) (
    input  wire             ap_clk,
    input  wire             ap_rst_n,
    input  wire [WIDTH-1:0] in0_V_TDATA,
    input  wire             in0_V_TVALID,
    output wire             in0_V_TREADY,
    output wire [WIDTH-1:0] out0_V_TDATA,
    output wire             out0_V_TVALID,
    input  wire             out0_V_TREADY
);
    generate
        if (IDENTITY) begin : g_wires
            assign out0_V_TDATA = in0_V_TDATA;
            assign out0_V_TVALID = in0_V_TVALID;
            assign in0_V_TREADY = out0_V_TREADY;
        end else begin : g_buffer
            reg [WIDTH-1:0] mem [0:2*WORDS-1];
            localparam KW = (CONST_WORDS > 1) ? $clog2(CONST_WORDS) : 1;
            reg [31:0] rom [0:OUT_WORDS-1];
            reg [WIDTH-1:0] cmem [0:CONST_WORDS-1];
            initial begin
                $readmemh(ADDR_FILE, rom);
                $readmemh(CONST_FILE, cmem);
            end
            reg [31:0] wcnt, rcnt;
            reg wbank, rbank;
            reg [1:0] full;
            assign in0_V_TREADY = ap_rst_n && !full[wbank];
            wire wr = in0_V_TVALID && in0_V_TREADY;
            reg [WIDTH-1:0] fifo [0:3];
            reg [1:0] fhead, ftail;
            reg [2:0] fcount;
            reg rd_valid, rd_const;
            reg [WIDTH-1:0] rd_data, rd_word;
            wire pop = out0_V_TVALID && out0_V_TREADY;
            wire issue = full[rbank] && (fcount + rd_valid < 3'd4);
            wire last_r = (rcnt == OUT_WORDS - 1);
            wire [31:0] entry = rom[rcnt];
            assign out0_V_TVALID = (fcount != 0);
            assign out0_V_TDATA = fifo[fhead];
            always @(posedge ap_clk) begin
                if (wr) mem[wbank * WORDS + wcnt] <= in0_V_TDATA;
                if (issue) rd_data <= mem[rbank * WORDS + entry[30:0]];
                if (issue) rd_const <= entry[31];
                if (issue) rd_word <= cmem[entry[31] ? entry[KW-1:0] : {KW{1'b0}}];
                if (rd_valid) fifo[ftail] <= rd_const ? rd_word : rd_data;
                if (!ap_rst_n) begin
                    wcnt <= 0; rcnt <= 0; wbank <= 1'b0; rbank <= 1'b0; full <= 2'b00;
                    fhead <= 0; ftail <= 0; fcount <= 0; rd_valid <= 1'b0;
                end else begin
                    if (wr) begin
                        wcnt <= (wcnt == WORDS - 1) ? 0 : wcnt + 1;
                        if (wcnt == WORDS - 1) wbank <= ~wbank;
                    end
                    rd_valid <= issue;
                    if (issue) begin
                        rcnt <= last_r ? 0 : rcnt + 1;
                        if (last_r) rbank <= ~rbank;
                    end
                    full <= (full | ((wr && wcnt == WORDS - 1) ? (2'b01 << wbank) : 2'b00))
                                 & ~((issue && last_r) ? (2'b01 << rbank) : 2'b00);
                    if (rd_valid) ftail <= ftail + 1'b1;
                    if (pop) fhead <= fhead + 1'b1;
                    fcount <= fcount + rd_valid - pop;
                end
            end
        end
    endgenerate
endmodule
