"""The instruction set of a plan, shared by the planner (which writes it) and the interpreter.

A plan's code is one int64 array: a fixed header, then the instructions, then index tables.
Each instruction is ``[opcode, length, arg0, arg1, ...]``; ``length`` counts the whole
instruction, so the interpreter steps from one to the next without knowing every format.
Each kernel module documents the layout of its own arguments next to the code that reads them.

The state table lists the arena regions that carry recurrent state from one step to the next,
as (offset, size) pairs; a call copies them to the saved region first and puts them back when
it refuses a step mid-way (see rollback).
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
HEADER_STATES = 8       # the state table, as an offset relative to the table base
HEADER_N_STATES = 9     # number of (offset, size) pairs in it
HEADER_SAVED = 10       # arena offset of the state's copy taken when a call starts
HEADER_FAULT = 11       # arena offset of two floats: a refused index and the rows of its table
HEADER_SIZE = 12

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

# Status codes returned by the interpreter: 0, or an error kind times STATUS_SCALE plus where:
# the flat index of the offending input value for input checks, the step (counted from the
# call's first) for faults found while a step runs. Kinds share the values of edgeseq_rt.h.
STATUS_OK = 0
STATUS_NOT_FINITE = 1        # an input value is NaN or Inf
STATUS_BAD_TOKEN = 2         # a token model's input is not an id of its table
STATUS_BAD_INDEX = 4         # an embedding index computed in the step is outside its table
STATUS_STATE_NOT_FINITE = 5  # the step's new state holds NaN or Inf
STATUS_SCALE = 1 << 40
