"""The options that commands share: how to read MODEL.pt, how to check, how to load MODEL.onnx.

``bench --reference`` reads MODEL.pt too, and takes ``trust_code_option`` alone. Every command
that loads an ONNX model takes ``loading_options`` (--constant, --state, --input-shape,
--context) and receives them as one ``load_options`` argument (``edgeseq_runtime.LoadOptions``).

Command modules are imported to list ``edgeseq --help`` on devices without the toolchain, so
this module does not import ``edgeseq_export``: its choices and defaults are written out here,
and tests/test_export_cli.py checks that they match the toolchain's.
"""

import functools

import click

NONLINEARITIES = ("tanh", "relu")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu")
DEFAULT_STEPS = 200
DEFAULT_TOLERANCE = 1e-4


def _stack(*options):
    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command
    return decorate


trust_code_option = click.option(
    "--trust-code", "--trust-pickle", "trust_code", is_flag=True,
    help="Allow a TorchScript archive or a pickled nn.Module. Loading either runs code from the file: "
         "only for files you trust.")

reading_options = _stack(
    click.option("--batch-first/--time-first", "batch_first", default=None,
                 help="The recurrent layers take (batch, time, features). For a plain state_dict or a "
                      "traced TorchScript archive, which do not record it [default: time first]."),
    click.option("--nonlinearity", type=click.Choice(NONLINEARITIES),
                 help="The nonlinearity of an nn.RNN in a plain state_dict, which does not record it (required there)."),
    click.option("--activation", type=click.Choice(["none", *ACTIVATIONS]),
                 help="The activation between the Linear layers of a plain state_dict, which does not record it "
                      "(required there; none for no activation)."),
    click.option("--linear-order", metavar="NAME,NAME,...",
                 callback=lambda ctx, param, value: tuple(value.split(",")) if value else None,
                 help="The Linear modules of the head in forward order, when they are stored out of order."),
    click.option("--front-end", metavar="'conv(padding=P,dilation=D,groups=G) [batchnorm] [relu] ...'",
                 help="A plain state_dict's conv front end in forward order, which it does not record: each "
                      "conv's padding, dilation and groups (default 0, 1, 1), batchnorm(eps=E), and the "
                      "activations between (relu, gelu, silu, leaky_relu(negative_slope=S), hardtanh(min_val=A,"
                      "max_val=B), elu(alpha=A), ...); zeropad(before=B,after=A) for an nn.ZeroPad1d before a conv."),
    trust_code_option,
)

checking_options = _stack(
    click.option("--steps", type=click.IntRange(min=1), default=DEFAULT_STEPS, show_default=True,
                 help="Length of the random sequence streamed through every implementation."),
    click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
                 help="Parallel streams."),
    click.option("--tolerance", type=click.FloatRange(min=0), default=DEFAULT_TOLERANCE, show_default=True,
                 help="Largest absolute difference allowed between any two implementations."),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random sequence."),
)


def _pairs(option: str, meaning: str, value_of):
    """A click callback: repeated ``NAME=VALUE`` -> {NAME: value_of(VALUE)}; a bad one is a usage
    error naming the option."""
    def parse(ctx, param, values):
        pairs = {}
        for text in values:
            name, sep, value = text.partition("=")
            if not sep or not name.strip() or not value.strip():
                raise click.BadParameter(f"'{text}' is not {meaning}", param_hint=option)
            if name.strip() in pairs:
                raise click.BadParameter(f"'{name.strip()}' is given twice", param_hint=option)
            try:
                pairs[name.strip()] = value_of(value.strip())
            except ValueError as e:
                raise click.BadParameter(f"'{text}': {e}", param_hint=option) from None
        return pairs
    return parse


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a number") from None


def _numbers(text: str):
    """A number, or a comma list of numbers for a vector."""
    values = [_number(part.strip()) for part in text.split(",")]
    return values if "," in text else values[0]


def _shape(ctx, param, value):
    if value is None:
        return None
    try:
        dims = tuple(int(d) for d in value.split(","))
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims):
        raise click.BadParameter(f"'{value}' is not a shape: positive ints separated by commas (e.g. 576 or 1,64)",
                                 param_hint="--input-shape")
    return dims


def loading_options(command):
    """--constant, --state, --input-shape and --context, passed to ``command`` as one
    ``load_options`` (an ``edgeseq_runtime.LoadOptions``)."""
    @functools.wraps(command)
    def with_load_options(*args, constant, state, input_shape, context, **kwargs):
        from edgeseq_runtime import LoadOptions

        try:
            options = LoadOptions(constant, state, input_shape, context)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
        return command(*args, load_options=options, **kwargs)

    return _stack(
        click.option("--constant", multiple=True, metavar="NAME=VALUE",
                     callback=_pairs("--constant", "NAME=VALUE", _numbers),
                     help="Fix graph input NAME to VALUE (a number, or a comma list for a vector) and fold "
                          "what is computed from it, e.g. --constant sr=16000 for Silero VAD. Repeatable."),
        click.option("--state", multiple=True, metavar="IN=OUT",
                     callback=_pairs("--state", "IN=OUT", str),
                     help="State input IN takes its next value from graph output OUT, where names do not "
                          "tell. Repeatable."),
        click.option("--input-shape", metavar="D[,D...]", callback=_shape,
                     help="One stream's step input shape, where the graph leaves dims symbolic "
                          "(Silero VAD: 576)."),
        click.option("--context", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Keep each stream's last N input values and put them before the next step's "
                          "new ones (Silero VAD: 64); a step then takes only the new values."),
    )(with_load_options)
