"""The instruction set of a plan, shared by the planner (which writes it) and the interpreter.

A plan's code is one int64 array: a fixed header, then the instructions, then index tables.
Each instruction is ``[opcode, length, arg0, arg1, ...]``; ``length`` counts the whole
instruction, so the interpreter steps from one to the next without knowing every format.
Each kernel module documents the layout of its own arguments next to the code that reads them.
"""

# Header slots.
HEADER_X_OFFSET = 0     # arena offset of the model input (one step, all streams)
HEADER_X_SIZE = 1       # floats per step
HEADER_Y_OFFSET = 2     # arena offset of the model output
HEADER_Y_SIZE = 3
HEADER_VOCAB = 4        # > 0 for token models: inputs are ids in [-vocab, vocab)
HEADER_START = 5        # first instruction
HEADER_END = 6          # one past the last instruction
HEADER_TABLES = 7       # start of the index tables
HEADER_SIZE = 8

# Opcodes.
OP_RNN = 1
OP_GRU = 2
OP_LSTM = 3
OP_DENSE = 4
OP_BINARY = 5
OP_ACTIVATION = 6
OP_SOFTMAX = 7
OP_COPY = 8
OP_EMBEDDING = 9

# Status codes returned by the interpreter: 0, or an error kind times STATUS_SCALE plus the
# flat index of the offending input value.
STATUS_OK = 0
STATUS_NOT_FINITE = 1
STATUS_BAD_TOKEN = 2
STATUS_SCALE = 1 << 40
