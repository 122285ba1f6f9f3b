"""Reading a user's model as a chain of known layers: [Embedding | front end] -> LSTM/GRU/RNN -> Linear.

The front end is ``nn.Conv1d`` over time, ``nn.BatchNorm1d`` and activation modules (``Dropout``
passes), between the transposes to (batch, channels, time) and back that ``forward`` makes.

Why rebuild from modules rather than convert the traced full-sequence graph. A traced graph
fixes what streaming has to change: the time convolution over the whole padded sequence, the
recurrent op over all steps, the sequence length itself. Turning it into a step graph means
rewriting it op by op, which is what tract's "pulse" does (each wire gets a stream axis and a
delay, a time convolution becomes a cached one); that is a compiler for any graph, far more than
the chains edgeseq streams. The layers, on the other hand, say everything a step needs (kernel,
dilation, groups, padding, BatchNorm statistics, cell and sizes), in every form a model comes
in: attributes of modules and scripted archives, constant arguments of a traced archive's ATen
calls, shapes of a state_dict. So edgeseq reads the layers, rebuilds the known network, and
writes the step graph itself with pulse's idea (``cells.FrontEndStep``); what the user's
``forward`` does besides the layers is caught by ``sources.Source.run``, which compares with the
user's own forward where it has it.

Two ways in. ``from_module`` walks the module tree of an ``nn.Module`` or a TorchScript
archive, where every layer's type is known. ``from_state_dict`` has only the keys and shapes of
a plain state_dict and infers the types: ``weight_ih_l*`` / ``weight_hh_l*`` make a recurrent
module (the gate count in their shapes tells LSTM from GRU from RNN, ``weight_hr_l*`` gives
``proj_size``, the highest ``l*`` the layer count, ``bias_*`` the bias); a lone 2-D weight
before it is an Embedding; a 2-D weight (and bias) after it is a Linear; 3-D weights before it
are convs and running statistics batch norms, whose settings and the activations between come
from ``--front-end`` (``parse_front_end``). Both end in
``assemble``, which checks the chain and returns the ``Architecture`` and the weights under
``RecurrentNetwork``'s names. What the weights cannot tell comes from ``ReadOptions``, and an
error names the option when it is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import SourceError
from .architecture import (
    ACTIVATIONS,
    FRONT_ACTIVATIONS,
    NONLINEARITIES,
    Activation,
    Architecture,
    BatchNorm,
    Conv,
    Linear,
    Recurrent,
)
from .network import build_recurrent

ACCEPTED = ("edgeseq exports [nn.Embedding, or a front end of nn.Conv1d, nn.BatchNorm1d and activations] -> "
            "nn.LSTM/GRU/RNN -> nn.Linear layers")
RECURRENT_PARAMETER = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?")
RECURRENT_TYPES = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn"}
ACTIVATION_TYPES = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "LeakyReLU": "leaky_relu",
                    "ReLU6": "relu6", "SiLU": "silu", "Mish": "mish", "SELU": "selu", "Hardsigmoid": "hardsigmoid",
                    "Hardswish": "hardswish", "GELU": "gelu", "ELU": "elu", "Hardtanh": "hardtanh"}
# The ATen call of each activation with settings, in a traced archive (which keeps no attributes).
ACTIVATION_CALLS = {"leaky_relu": "aten::leaky_relu", "elu": "aten::elu", "gelu": "aten::gelu",
                    "hardtanh": "aten::hardtanh"}
CONV_CALLS = ("aten::_convolution", "aten::_convolution_mode", "aten::conv1d")
OTHER_CONVS = {"Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "LazyConv1d"}
ATTENTION_TYPES = {"MultiheadAttention", "Transformer", "TransformerEncoder", "TransformerEncoderLayer",
                   "TransformerDecoder", "TransformerDecoderLayer"}
ZERO_PADS = {"ZeroPad1d", "ConstantPad1d"}  # before a Conv1d: its padding, on each side as given
OTHER_PADS = {"ReflectionPad1d", "ReplicationPad1d", "CircularPad1d"}
FRONT_KINDS = ("pad", "conv", "batchnorm", "activation")
PASSIVE_TYPES = {"Dropout", "Dropout1d", "AlphaDropout", "Identity"}  # nothing to export in eval
RNN_MODES = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}
# The ATen calls a traced recurrent module makes; an RNN's nonlinearity is in the call's name.
TRACED_CALLS = {"aten::lstm": None, "aten::gru": None, "aten::rnn_tanh": "tanh", "aten::rnn_relu": "relu"}
GATES = {4: "lstm", 3: "gru", 1: "rnn"}


@dataclass(frozen=True)
class ReadOptions:
    """What a file may not record, as the user gives it (None: not given)."""

    batch_first: bool | None = None        # default False, as in PyTorch
    nonlinearity: str | None = None        # of an nn.RNN: "tanh" or "relu"; a state_dict needs it
    activation: str | None = None          # between a state_dict's Linear layers: "none" or one of
                                           # ACTIVATIONS; a state_dict with two Linear layers needs it
    linear_order: tuple[str, ...] | None = None  # a state_dict's Linear modules, in forward order
    trust_code: bool = False               # allow a TorchScript archive or a pickled nn.Module (runs code)
    front_end: str | None = None           # a state_dict's front end in forward order (``parse_front_end``)

    def __post_init__(self):
        if self.nonlinearity not in (None, *NONLINEARITIES):
            raise ValueError(f"nonlinearity {self.nonlinearity!r}: expected one of {', '.join(NONLINEARITIES)}")
        if self.activation not in (None, "none", *ACTIVATIONS):
            raise ValueError(f"activation {self.activation!r}: expected none or one of {', '.join(ACTIVATIONS)}")
        if self.front_end is not None:
            parse_front_end(self.front_end)

    def given(self) -> dict:
        """The options the user gave, as plain data (recorded in the exported model)."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in vars(self).items() if value is not None and name != "trust_code"}


FRONT_END_FORM = ("'conv(padding=P,dilation=D,groups=G) [batchnorm(eps=E)] [relu|gelu(approximate=tanh)|"
                  "leaky_relu(negative_slope=S)|...] ...', in forward order")
_FRONT_ITEM = re.compile(r"\s*(\w+)(?:\(([^()]*)\))?\s*")
FRONT_ITEM_SETTINGS = {"conv": ("padding", "dilation", "groups"), "batchnorm": ("eps",), "dropout": ("p",),
                       "zeropad": ("before", "after"), **FRONT_ACTIVATIONS}


def parse_front_end(text: str) -> list[tuple[str, dict]]:
    """``--front-end``: what a state_dict cannot record of its front end, as (kind, settings) in
    forward order: its convs' padding, dilation and groups (default 0, 1, 1), its batch norms'
    eps (default 1e-5), the activations between them, and ``zeropad(before=B,after=A)`` where an
    ``nn.ZeroPad1d`` pads before a conv. SourceError naming what is wrong."""
    items, position = [], 0
    while position < len(text):
        found = _FRONT_ITEM.match(text, position)
        if not found or found.end() == position:
            raise SourceError(f"--front-end {text!r}: cannot read {text[position:]!r}; expected {FRONT_END_FORM}")
        kind, arguments = found.group(1), found.group(2)
        if kind not in FRONT_ITEM_SETTINGS:
            raise SourceError(f"--front-end {text!r}: {kind!r} is none of {', '.join(FRONT_ITEM_SETTINGS)}")
        settings = {}
        for argument in filter(None, (a.strip() for a in (arguments or "").split(","))):
            name, equals, value = (part.strip() for part in argument.partition("="))
            if not equals or name not in FRONT_ITEM_SETTINGS[kind]:
                takes = ", ".join(FRONT_ITEM_SETTINGS[kind]) or "no settings"
                raise SourceError(f"--front-end {text!r}: {kind} takes {takes}; got {argument!r}")
            settings[name] = _setting_value(value)
        items.append((kind, settings))
        position = found.end()
    return items


def _setting_value(text: str):
    """An int, else a float, else the word itself (``same``, ``tanh``)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@dataclass
class Layer:
    name: str                           # the user's module name
    kind: str                           # recurrent | embedding | linear | activation | gap
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)  # what the module records (batch_first, ...)


def from_state_dict(state_dict: dict[str, torch.Tensor], where: str) -> list[Layer]:
    """The layers of a plain state_dict, with a ``gap`` between every two Linear layers.

    A gap stands for an activation the state_dict cannot show (``--activation`` must name it). It
    is ``evident`` when the Linear layers are items of an nn.Sequential whose indices skip one
    (``head.0``, ``head.2``): a module without parameters sits between them.
    """
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        module, _, parameter = key.rpartition(".")
        modules.setdefault(module, {})[parameter] = value
    layers: list[Layer] = []
    for name, params in modules.items():
        if any(RECURRENT_PARAMETER.fullmatch(p) for p in params):
            layers.append(Layer(name, "recurrent", params))
        elif "running_mean" in params and "running_var" in params:
            layers.append(Layer(name, "batchnorm", params, {"affine": "weight" in params, "unrecorded": True}))
        elif params.get("weight") is not None and params["weight"].dim() == 3 and set(params) <= {"weight", "bias"}:
            layers.append(Layer(name, "conv", params, {"unrecorded": True}))  # settings from --front-end
        elif _is_linear(params):
            before_recurrent = not any(layer.kind == "recurrent" for layer in layers)
            kind = "embedding" if before_recurrent and "bias" not in params else "linear"
            if kind == "linear" and layers and layers[-1].kind == "linear":
                between = (layers[-1].name, name)
                layers.append(Layer("", "gap", settings={"evident": _index_skips(*between), "between": between}))
            layers.append(Layer(name, kind, params))
        else:
            raise SourceError(f"{where}: module '{name or '(top level)'}' ({_describe(params)}) is not "
                              f"supported; {ACCEPTED}")
    return layers


def from_module(module: nn.Module, where: str) -> list[Layer]:
    """The layers of an ``nn.Module`` or TorchScript module, in registration order.

    A module without weights appears at each place it is registered (``act = nn.ReLU()`` used
    twice in an ``nn.Sequential`` runs twice); one with weights only at its first."""
    layers, weighted = [], set()
    for name, child in module.named_modules(remove_duplicate=False):
        if any(True for _ in child.parameters()) or any(True for _ in child.buffers()):
            if id(child) in weighted:
                continue
            weighted.add(id(child))
        type_name = module_type(child)
        label = f"module '{name or '(root)'}' ({type_name})"
        if type_name in ATTENTION_TYPES:
            raise SourceError(f"{where}: {label} is not supported: attention reads the whole sequence at once, "
                              f"and a stream has only the steps so far; {ACCEPTED}")
        if any(True for _ in child.children()):  # a container: its children are the layers
            own = [n for n, _ in (*child.named_parameters(recurse=False), *child.named_buffers(recurse=False))]
            if own:
                raise SourceError(f"{where}: {label} holds parameters of its own ({', '.join(own)}); {ACCEPTED}")
            continue
        params = dict(child.state_dict())
        if type_name in RECURRENT_TYPES:
            mode = getattr(child, "mode", None)
            settings = {"batch_first": getattr(child, "batch_first", None),
                        "bidirectional": getattr(child, "bidirectional", None),
                        "nonlinearity": RNN_MODES.get(mode) if isinstance(mode, str) else None}
            for key, value in _traced_settings(child).items():
                settings[key] = value if settings[key] is None else settings[key]
            layers.append(Layer(name, "recurrent", params, settings))
        elif type_name == "Linear":
            layers.append(Layer(name, "linear", params))
        elif type_name == "Embedding":
            layers.append(Layer(name, "embedding", params))
        elif type_name == "Conv1d":
            layers.append(Layer(name, "conv", params, _conv_settings(child, f"{where}: {label}")))
        elif type_name in ZERO_PADS:
            layers.append(Layer(name, "pad", settings=_pad_settings(child, f"{where}: {label}")))
        elif type_name in OTHER_PADS:
            raise SourceError(f"{where}: {label} pads with frames of the sequence itself: a stream cannot read "
                              f"frames that have not come; edgeseq streams zero padding only")
        elif type_name == "BatchNorm1d":
            layers.append(Layer(name, "batchnorm", params, _batchnorm_settings(child, f"{where}: {label}")))
        elif type_name in ACTIVATION_TYPES:
            kind = ACTIVATION_TYPES[type_name]
            layers.append(Layer(name, "activation", settings={"activation": kind,
                                                              "settings": _activation_settings(child, kind)}))
        elif type_name in OTHER_CONVS:
            raise SourceError(f"{where}: {label} is not supported: a stream takes one frame a step, so edgeseq "
                              f"streams nn.Conv1d over the time axis only; {ACCEPTED}")
        elif type_name not in PASSIVE_TYPES:
            raise SourceError(f"{where}: {label} is not supported; {ACCEPTED}")
    return layers


def _conv_settings(module: nn.Module, where: str) -> dict:
    """A Conv1d's kernel, dilation, groups and padding (attributes, or a traced archive's call),
    refused when a stream cannot compute it."""
    names = ("stride", "padding", "dilation", "groups", "padding_mode")
    settings = {name: getattr(module, name, None) for name in names}
    call = _call_arguments(module, CONV_CALLS)
    for name in ("stride", "padding", "dilation", "groups"):
        if settings[name] is None:
            settings[name] = call.get(name)
    stride, dilation = _single(settings["stride"], 1), _single(settings["dilation"], 1)
    padding = settings["padding"] if isinstance(settings["padding"], str) else _single(settings["padding"], 0)
    if stride != 1:
        raise SourceError(f"{where} has stride {stride} in time: it gives one output every {stride} steps, "
                          f"and a stream gives one output a step; edgeseq streams stride 1 only")
    if settings["padding_mode"] not in (None, "zeros"):
        raise SourceError(f"{where} pads with {settings['padding_mode']!r}: a stream cannot read frames that "
                          f"have not come; edgeseq streams zero padding only")
    if padding == "valid":
        padding = 0
    return {"dilation": dilation, "groups": int(settings["groups"] or 1), "padding": padding}


def _pad_settings(module: nn.Module, where: str) -> dict:
    """A ZeroPad1d's or ConstantPad1d's (before, after) frames; refused unless it pads with zeros
    (the value a stream's caches start from)."""
    call = _call_arguments(module, ("aten::pad", "aten::constant_pad_nd"))
    sides, value = getattr(module, "padding", call.get("pad")), getattr(module, "value", call.get("value", 0.0))
    if value not in (0, None):
        raise SourceError(f"{where} pads with {value}: a stream's caches start at zeros; edgeseq streams "
                          f"zero padding only")
    return {"padding": tuple(int(side) for side in sides)}


def _batchnorm_settings(module: nn.Module, where: str) -> dict:
    """A BatchNorm1d's eps; refused without running statistics (it then normalises each batch by
    its own statistics, even in eval mode, which one frame of a stream cannot)."""
    params = dict(module.state_dict())
    if "running_mean" not in params or "running_var" not in params:
        raise SourceError(f"{where} keeps no running statistics (track_running_stats=False): it normalises "
                          f"by each batch's own, which a stream of one frame cannot")
    eps = getattr(module, "eps", None)
    if eps is None:
        eps = _call_arguments(module, ("aten::batch_norm",)).get("eps", 1e-5)
    return {"eps": float(eps), "affine": "weight" in params}


def _activation_settings(module: nn.Module, kind: str) -> tuple:
    """The settings of an activation module that change its values (``FRONT_ACTIVATIONS``)."""
    names = FRONT_ACTIVATIONS[kind]
    call = _call_arguments(module, (ACTIVATION_CALLS[kind],)) if kind in ACTIVATION_CALLS else {}
    values = {name: getattr(module, name, call.get(name)) for name in names}
    return tuple((name, value) for name, value in values.items() if value is not None)


def _single(value, default: int) -> int:
    """One int from PyTorch's 1-tuples (or a bare int)."""
    if value is None:
        return default
    return int(value[0]) if isinstance(value, (tuple, list)) else int(value)


def _call_arguments(module: nn.Module, calls) -> dict:
    """The constant arguments, by their schema names, of the first ATen call of ``calls`` in the
    graph of a traced TorchScript module (tracing keeps settings there, not as attributes)."""
    try:
        nodes = list(module.graph.nodes())
    except (AttributeError, RuntimeError):  # a plain module, or a script module without forward
        return {}
    for node in nodes:
        if node.kind() in calls:
            names = [argument.name for argument in torch._C.parse_schema(node.schema()).arguments]
            return {name: value for name, value in zip(names, map(_constant, node.inputs())) if value is not None}
    return {}


def _constant(value):
    """A traced graph value's constant (a list of constants too), or None."""
    node = value.node()
    if node.kind() == "prim::Constant":
        return value.toIValue()
    if node.kind() == "prim::ListConstruct":
        items = [_constant(item) for item in node.inputs()]
        return items if all(item is not None for item in items) else None
    return None


def _traced_settings(module: nn.Module) -> dict:
    """batch_first, bidirectional and an RNN's nonlinearity as a traced TorchScript module records
    them: not as attributes (tracing keeps none) but as constant arguments of its ATen call."""
    try:
        kinds = [node.kind() for node in module.graph.nodes()]
    except (AttributeError, RuntimeError):  # a plain module, or a script module without forward
        return {}
    call = next((kind for kind in kinds if kind in TRACED_CALLS), None)
    if call is None:
        return {}
    values = _call_arguments(module, (call,))
    return {"batch_first": values.get("batch_first"), "bidirectional": values.get("bidirectional"),
            "nonlinearity": TRACED_CALLS[call]}


def module_type(module: nn.Module) -> str:
    """The class name of a module, also of a TorchScript one (which keeps it aside)."""
    return getattr(module, "original_name", type(module).__name__)


def assemble(layers: list[Layer], options: ReadOptions, where: str) -> tuple[Architecture, dict]:
    """Check the chain and return ``(architecture, weights named for RecurrentNetwork)``."""
    recurrent_at = [i for i, layer in enumerate(layers) if layer.kind == "recurrent"]
    if not recurrent_at:
        names = ", ".join(f"'{layer.name}'" for layer in layers if layer.name) or "none"
        raise SourceError(f"{where}: no LSTM, GRU or RNN module found (modules: {names}); {ACCEPTED}")
    before, middle = layers[:recurrent_at[0]], layers[recurrent_at[0]:recurrent_at[-1] + 1]
    after = layers[recurrent_at[-1] + 1:]
    if any(layer.settings.get("unrecorded") for layer in before):
        before = _front_from_option(before, options, where)
    front = [layer for layer in before if layer.kind in FRONT_KINDS]
    if len(before) > 1 and len(front) < len(before):
        raise SourceError(f"{where}: modules {', '.join(repr(layer.name) for layer in before)} come before "
                          f"the recurrent layers, where only one embedding, or a front end alone, can; {ACCEPTED}")
    for position, part, allowed in (("before", before, ("embedding", *FRONT_KINDS)),
                                    ("between", middle, ("recurrent",)),
                                    ("after", after, ("linear", "activation", "gap"))):
        for layer in part:
            if layer.kind not in allowed:
                raise SourceError(f"{where}: module '{layer.name}' ({layer.kind}) cannot come {position} "
                                  f"the recurrent layers; {ACCEPTED}")
    for layer in middle:
        if layer.settings.get("bidirectional") or any(p.endswith("_reverse") for p in layer.params):
            raise SourceError(f"{where}: module '{layer.name}' is bidirectional; a stream runs forward "
                              f"in time only, so edgeseq exports unidirectional LSTM/GRU/RNN layers")
    batch_first = _setting(middle, "batch_first", options.batch_first, False, "--batch-first", where)
    recurrent = tuple(_recurrent(layer, options, where) for layer in middle)
    if options.linear_order is not None:
        after = _reordered(after, options.linear_order, where)
    head = _head(after, recurrent[-1].output_size, options, where)

    front_specs, weights = _front(front, where)
    embedding = before[0] if before and not front else None
    if embedding is not None:
        table = embedding.params.get("weight")
        if table is None or table.dim() != 2 or table.shape[1] != recurrent[0].input_size:
            shape = list(table.shape) if table is not None else "none"
            raise SourceError(f"{where}: embedding '{embedding.name}' has a weight of shape {shape}; the "
                              f"recurrent layer takes {recurrent[0].input_size} features")
        weights["embedding.weight"] = table
    for index, layer in enumerate(middle):
        weights.update({f"recurrent.{index}.{p}": v for p, v in layer.params.items()})
    for index, (spec, layer) in enumerate(head):
        if isinstance(spec, Linear):
            weights.update({f"head.{index}.{p}": v for p, v in layer.params.items()})
    try:
        architecture = Architecture(recurrent, tuple(spec for spec, _ in head),
                                    vocab_size=embedding.params["weight"].shape[0] if embedding else 0,
                                    batch_first=batch_first, front=front_specs)
    except ValueError as e:
        raise SourceError(f"{where}: {e}") from None
    return architecture, weights


def _front_from_option(layers: list[Layer], options: ReadOptions, where: str) -> list[Layer]:
    """A state_dict's convs and batch norms, with the settings and activations --front-end gives."""
    if options.front_end is None:
        raise SourceError(f"{where}: a state_dict does not record its convs' padding, dilation and groups, "
                          f"nor the activations between them; give them with --front-end {FRONT_END_FORM}")
    stored = [layer for layer in layers if layer.kind in ("conv", "batchnorm")]
    items = [(kind, settings) for kind, settings in parse_front_end(options.front_end) if kind != "dropout"]
    named = [kind for kind, _ in items if kind in ("conv", "batchnorm")]
    if named != [layer.kind for layer in stored]:
        raise SourceError(f"{where}: --front-end names {' '.join(named) or 'nothing'}; the state_dict holds "
                          f"{' '.join(f'{layer.kind} {layer.name!r}' for layer in stored) or 'no front end'}")
    stored_layers, front = iter(stored), []
    for kind, settings in items:
        if kind == "conv":
            layer = next(stored_layers)
            front.append(Layer(layer.name, kind, layer.params, {"padding": settings.get("padding", 0),
                                                                "dilation": settings.get("dilation", 1),
                                                                "groups": settings.get("groups", 1)}))
        elif kind == "zeropad":
            sides = (settings.get("before", 0), settings.get("after", 0))
            front.append(Layer(kind, "pad", settings={"padding": sides}))
        elif kind == "batchnorm":
            layer = next(stored_layers)
            front.append(Layer(layer.name, kind, layer.params, {"affine": layer.settings["affine"],
                                                                "eps": settings.get("eps", 1e-5)}))
        else:
            front.append(Layer(kind, "activation", settings={"activation": kind, "settings": tuple(settings.items())}))
    return front


def _front(layers: list[Layer], where: str) -> tuple[tuple, dict]:
    """The front end's specs, and its weights named for ``RecurrentNetwork.front``."""
    specs, weights, pad = [], {}, None
    for index, layer in enumerate(layers):
        if pad is not None and layer.kind != "conv":
            raise SourceError(f"{where}: module '{pad.name}' pads the time axis, but what follows is not a Conv1d "
                              f"(edgeseq streams a padding that a conv reads)")
        if layer.kind == "pad":
            pad = layer
            continue
        try:
            if layer.kind == "conv":
                weight = layer.params.get("weight")
                if weight is None or weight.dim() != 3:
                    raise ValueError(f"weight of shape {list(weight.shape) if weight is not None else 'none'}, "
                                     f"not (out channels, in channels / groups, kernel)")
                groups, padding = layer.settings["groups"], layer.settings["padding"]
                if pad is not None:
                    if padding == "same":
                        raise ValueError(f"padding 'same' after '{pad.name}', which pads too: give one of them")
                    padding = tuple(side + padding for side in pad.settings["padding"])
                    pad = None
                specs.append(Conv(int(weight.shape[1]) * groups, int(weight.shape[0]), int(weight.shape[2]),
                                  layer.settings["dilation"], groups, "bias" in layer.params, padding))
            elif layer.kind == "batchnorm":
                specs.append(BatchNorm(int(layer.params["running_mean"].shape[0]), layer.settings["eps"],
                                       layer.settings["affine"]))
            else:
                specs.append(Activation(layer.settings["activation"], layer.settings["settings"]))
        except ValueError as e:
            raise SourceError(f"{where}: module '{layer.name}': {e}") from None
        weights.update({f"front.{len(specs) - 1}.{p}": v for p, v in layer.params.items()})
    if pad is not None:
        raise SourceError(f"{where}: module '{pad.name}' pads the time axis, but no Conv1d follows it")
    return tuple(specs), weights


def _recurrent(layer: Layer, options: ReadOptions, where: str) -> Recurrent:
    """A recurrent module's settings, from the shapes of its weights."""
    params = layer.params
    for key in ("weight_ih_l0", "weight_hh_l0"):
        if key not in params:
            raise SourceError(f"{where}: recurrent module '{layer.name}' has no {key}")
    hh, hr = params["weight_hh_l0"], params.get("weight_hr_l0")
    hidden = int(hr.shape[1] if hr is not None else hh.shape[1])
    gates, rest = divmod(int(hh.shape[0]), hidden)
    if rest or gates not in GATES:
        raise SourceError(f"{where}: '{layer.name}.weight_hh_l0' of shape {list(hh.shape)} fits no LSTM "
                          f"(4 gates), GRU (3) or RNN (1)")
    cell = GATES[gates]
    nonlinearity = "tanh"
    if cell == "rnn":
        nonlinearity = _setting([layer], "nonlinearity", options.nonlinearity, None, "--nonlinearity", where)
        if nonlinearity is None:  # tanh and relu weights look alike: a guess would change every output
            raise SourceError(f"{where}: RNN module '{layer.name}': a state_dict does not record its "
                              f"nonlinearity; name it with --nonlinearity {'|'.join(NONLINEARITIES)}")
    num_layers = 1 + max(int(m.group(2)) for m in map(RECURRENT_PARAMETER.fullmatch, params) if m)
    if num_layers > len(params):  # each layer has weights of its own: refuse before building num_layers
        raise SourceError(f"{where}: recurrent module '{layer.name}' names layer {num_layers - 1} but holds "
                          f"{len(params)} weights")
    try:
        spec = Recurrent(cell, int(params["weight_ih_l0"].shape[1]), hidden, num_layers,
                         bias="bias_ih_l0" in params, proj_size=int(hr.shape[0]) if hr is not None else 0,
                         nonlinearity=nonlinearity)
    except ValueError as e:
        raise SourceError(f"{where}: recurrent module '{layer.name}': {e}") from None
    with torch.device("meta"):
        module = build_recurrent(spec, batch_first=False)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in params.items()}
    if found != expected:
        wrong = sorted(set(found) ^ set(expected)) or [k for k in expected if found[k] != expected[k]]
        key = wrong[0]
        raise SourceError(f"{where}: '{layer.name}.{key}' is {list(found.get(key, ())) or 'missing'}, but a "
                          f"{cell.upper()} with {num_layers} layer(s), hidden size {hidden} and input size "
                          f"{spec.input_size} has {list(expected.get(key, ())) or 'no such weight'}")
    return spec


def _head(layers: list[Layer], size: int, options: ReadOptions, where: str) -> list[tuple]:
    """``(Linear spec or activation name, layer)`` pairs, checked to chain from ``size``."""
    head, previous = [], "the recurrent layer"
    for layer in layers:
        if layer.kind == "activation":
            kind, settings = layer.settings["activation"], dict(layer.settings.get("settings", ()))
            if kind not in ACTIVATIONS or settings.get("negative_slope", 0.01) != 0.01:
                shown = f"{kind} {settings}" if settings else kind
                raise SourceError(f"{where}: module '{layer.name}' ({shown}) after the recurrent layers: the head "
                                  f"takes {', '.join(ACTIVATIONS)} (negative_slope 0.01) between Linear layers")
            head.append((kind, layer))
        elif layer.kind == "gap":
            if options.activation is None:  # never guessed: it changes every output
                first, second = layer.settings["between"]
                what = ("a module without parameters sits between" if layer.settings.get("evident") else
                        "a state_dict does not record whether forward applies an activation between")
                raise SourceError(f"{where}: {what} Linear layers '{first}' and '{second}'; name it with "
                                  f"--activation {'|'.join(['none', *ACTIVATIONS])}")
            if options.activation not in (None, "none"):
                head.append((options.activation, layer))
        else:
            weight, bias = layer.params["weight"], layer.params.get("bias")
            if weight.shape[1] != size:
                raise SourceError(f"{where}: Linear '{layer.name}' takes {weight.shape[1]} features, but "
                                  f"{previous} gives {size}; if the Linear layers are stored out of "
                                  f"order, give their order with --linear-order")
            head.append((Linear(int(weight.shape[1]), int(weight.shape[0]), bias is not None), layer))
            size, previous = int(weight.shape[0]), layer.name
    return head


def _reordered(layers: list[Layer], order: tuple[str, ...], where: str) -> list[Layer]:
    """The head's Linear layers in ``order`` (--linear-order), a gap between each two."""
    linears = {layer.name: layer for layer in layers if layer.kind == "linear"}
    if sorted(order) != sorted(linears):
        raise SourceError(f"{where}: --linear-order names {', '.join(order) or 'nothing'}; the Linear "
                          f"modules are {', '.join(linears) or 'none'}")
    if any(layer.kind == "activation" for layer in layers):
        raise SourceError(f"{where}: --linear-order cannot reorder a head that has activation modules")
    reordered = []
    for name in order:
        if reordered:
            reordered.append(Layer("", "gap", settings={"between": (reordered[-1].name, name)}))
        reordered.append(linears[name])
    return reordered


def _setting(layers: list[Layer], name: str, option, default, flag: str, where: str):
    """A setting the modules may record: the option must agree with it; else option or default."""
    recorded = {layer.settings.get(name) for layer in layers} - {None}
    if len(recorded) > 1:
        raise SourceError(f"{where}: the recurrent modules disagree on {name} ({sorted(map(str, recorded))})")
    if recorded:
        value = recorded.pop()
        if option is not None and option != value:
            raise SourceError(f"{where}: {flag} {option} contradicts module '{layers[0].name}', which "
                              f"records {name}={value}")
        return value
    return default if option is None else option


def _is_linear(params: dict[str, torch.Tensor]) -> bool:
    weight, bias = params.get("weight"), params.get("bias")
    return (set(params) <= {"weight", "bias"} and weight is not None and weight.dim() == 2
            and (bias is None or tuple(bias.shape) == (weight.shape[0],)))


def _index_skips(first: str, second: str) -> bool:
    """True for Sequential items whose indices skip one, like 'head.0' and 'head.2'."""
    a, b = first.rpartition("."), second.rpartition(".")
    return a[0] == b[0] and a[2].isdigit() and b[2].isdigit() and int(b[2]) > int(a[2]) + 1


def _describe(params: dict[str, torch.Tensor]) -> str:
    """A guess at what a module of unknown parameters is, for an error message."""
    weight = params.get("weight")
    if any("in_proj" in p for p in params):
        return "attention: " + ", ".join(params)
    if weight is not None and weight.dim() >= 3:
        return f"a convolution: weight of shape {list(weight.shape)}"
    if "running_mean" in params or (weight is not None and weight.dim() == 1):
        return "a normalisation layer: " + ", ".join(params)
    return ", ".join(f"{p} {list(v.shape)}" for p, v in params.items())
