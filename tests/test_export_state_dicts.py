"""``edgeseq export`` of plain state_dicts: the architecture is read from the keys and shapes.

Every constructor option the contract lists (num_layers, bias=False, batch_first both ways,
proj_size, RNN nonlinearity, an embedding first, several Linear layers with an activation)
is exported from a ``torch.save(model.state_dict())`` file, and the written model is streamed by
ONNX Runtime and edgeseq and compared with the user's own module. What the state_dict cannot
tell must be asked for by an option, and the error names it; what edgeseq cannot stream is
refused naming the module.
"""

import onnx
import pytest
import torch
from edgeseq_export.errors import SourceError
from support.export_cases import UserSpec, assert_streams_like, build, random_inputs
from torch import nn

import edgeseq

# (spec, the options a state_dict needs to be read as the module was written)
CASES = [
    (UserSpec("LSTM"), {}),
    (UserSpec("LSTM", num_layers=2, bias=False), {}),
    (UserSpec("GRU", num_layers=2, batch_first=True), {"batch_first": True}),
    (UserSpec("GRU", bias=False), {}),
    (UserSpec("RNN", nonlinearity="relu", bias=False), {"nonlinearity": "relu"}),
    (UserSpec("RNN", num_layers=2, batch_first=True), {"batch_first": True, "nonlinearity": "tanh"}),
    (UserSpec("LSTM", num_layers=2, proj_size=3, batch_first=True), {"batch_first": True}),
    (UserSpec("GRU", vocab_size=11, head=(11,)), {}),
    (UserSpec("LSTM", head=(6, "relu", 5, "relu", 2)), {"activation": "relu"}),
    (UserSpec("GRU", head=(6, "sigmoid", 2), batch_first=True), {"activation": "sigmoid", "batch_first": True}),
    (UserSpec("GRU", second_cell="LSTM"), {}),
]


@pytest.mark.parametrize("spec, options", CASES, ids=[spec.name for spec, _ in CASES])
def test_state_dict_streams_like_the_module(tmp_path, spec, options):
    model = build(spec, seed=len(spec.name))
    source = tmp_path / "model.pt"
    torch.save(model.state_dict(), source)
    report = edgeseq.export(source, tmp_path / "model.onnx", **options)
    assert report.form == "state_dict" and report.verification.ok
    assert [(d.first, d.second) for d in report.verification.differences] == [
        ("PyTorch", "ONNX Runtime"), ("PyTorch", "edgeseq"), ("ONNX Runtime", "edgeseq")]
    assert_streams_like(report.path, model, random_inputs(spec), spec.batch_first)


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_first", "batch_first"])
def test_batch_first_option_sets_the_input_layout(tmp_path, batch_first):
    spec = UserSpec("GRU", batch_first=batch_first)
    model = build(spec)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx", batch_first=batch_first or None)
    x = onnx.load(str(tmp_path / "model.onnx")).graph.input[0]
    dims = [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim]
    assert dims == (["batch", "time", 4] if batch_first else ["time", "batch", 4])
    assert_streams_like(tmp_path / "model.onnx", model, random_inputs(spec), batch_first)


def test_evident_activation_needs_the_option(tmp_path):
    model = build(UserSpec("LSTM", head=(6, "relu", 3)))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    with pytest.raises(SourceError) as error:
        edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx")
    assert "'head.0' and 'head.2'" in str(error.value) and "--activation" in str(error.value)
    assert not (tmp_path / "model.onnx").exists()


class FunctionalActivation(nn.Module):
    """Two Linear attributes with an activation called in forward: no module shows it."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 8)
        self.fc1 = nn.Linear(8, 6)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(self.rnn(x)[0])))


@pytest.mark.parametrize("module, option, message", [
    (nn.RNN(4, 8, nonlinearity="relu"), {"nonlinearity": "relu"}, "--nonlinearity tanh|relu"),
    (nn.RNN(4, 8), {"nonlinearity": "tanh"}, "--nonlinearity tanh|relu"),
    (FunctionalActivation(), {"activation": "relu"}, "'fc1' and 'fc2'; name it with --activation"),
], ids=["rnn_relu", "rnn_tanh", "functional_activation"])
def test_what_a_state_dict_does_not_record_is_never_guessed(tmp_path, module, option, message):
    """Refused without the option (a guess would change every output); exact with it."""
    torch.manual_seed(0)
    torch.save(module.state_dict(), tmp_path / "model.pt")
    with pytest.raises(SourceError) as error:
        edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx")
    assert message in str(error.value) and not (tmp_path / "model.onnx").exists()
    edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx", **option)
    x = torch.randn(20, 1, 4)
    with torch.no_grad():
        expected = module(x)
    expected = (expected[0] if isinstance(expected, tuple) else expected)[:, 0].numpy()
    streamed = edgeseq.load(tmp_path / "model.onnx").run(x[:, 0].numpy())
    assert abs(streamed - expected).max() <= 1e-5


class OutOfOrder(nn.Module):
    """Registers its head's Linear layers in the reverse of the order forward calls them."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 8)
        self.out = nn.Linear(6, 3)
        self.hidden = nn.Linear(8, 6)

    def forward(self, x):
        return self.out(self.hidden(self.rnn(x)[0]))


def test_linear_layers_out_of_order_need_linear_order(tmp_path):
    torch.manual_seed(0)
    model = OutOfOrder().eval()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    with pytest.raises(SourceError, match="--linear-order"):
        edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx")
    edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx", linear_order=["hidden", "out"],
                   activation="none")
    assert_streams_like(tmp_path / "model.onnx", model, random_inputs(UserSpec()), batch_first=False)


def test_linear_order_must_name_the_linear_modules(tmp_path):
    torch.save(OutOfOrder().state_dict(), tmp_path / "model.pt")
    with pytest.raises(SourceError, match="the Linear modules are out, hidden"):
        edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx", linear_order=["hidden", "fc"])


REFUSED = {  # modules of a state_dict, and how the error names the one edgeseq refuses
    "bidirectional_lstm": (dict(lstm=nn.LSTM(4, 8, bidirectional=True), fc=nn.Linear(16, 2)),
                           "module 'lstm' is bidirectional"),
    "bidirectional_gru": (dict(gru=nn.GRU(4, 8, num_layers=2, bidirectional=True), fc=nn.Linear(16, 2)),
                          "module 'gru' is bidirectional"),
    "convolution": (dict(conv=nn.Conv1d(4, 4, 3), lstm=nn.LSTM(4, 8), fc=nn.Linear(8, 2)),
                    "a state_dict does not record its convs' padding, dilation and groups"),  # --front-end does
    "convolution_after": (dict(lstm=nn.LSTM(4, 8), conv=nn.Conv1d(8, 8, 3), fc=nn.Linear(8, 2)),
                          "module 'conv' (conv) cannot come after the recurrent layers"),
    "attention": (dict(lstm=nn.LSTM(4, 8), attention=nn.MultiheadAttention(8, 2), fc=nn.Linear(8, 2)),
                  "module 'attention' (attention"),
    "layer_norm": (dict(lstm=nn.LSTM(4, 8), norm=nn.LayerNorm(8), fc=nn.Linear(8, 2)),
                   "module 'norm' (a normalisation layer"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_unsupported_modules_are_refused_by_name(tmp_path, case):
    modules, named = REFUSED[case]
    torch.save(nn.ModuleDict(modules).state_dict(), tmp_path / "model.pt")
    with pytest.raises(SourceError) as error:
        edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'model.pt'}: ") and named in message and "\n" not in message
    assert not (tmp_path / "model.onnx").exists()


def test_weights_of_the_wrong_shape_are_named(tmp_path):
    state = build(UserSpec("LSTM", num_layers=2)).state_dict()
    state["rnn.weight_hh_l1"] = torch.zeros(32, 5)
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(SourceError, match=r"'rnn.weight_hh_l1' is \[32, 5\]"):
        edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx")


def test_state_dict_without_recurrent_layer_is_refused(tmp_path):
    torch.save(nn.Sequential(nn.Linear(4, 3)).state_dict(), tmp_path / "model.pt")
    with pytest.raises(SourceError, match="no LSTM, GRU or RNN module found"):
        edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx")
