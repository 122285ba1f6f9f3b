"""The options that ``export`` and ``verify`` share: how to read MODEL.pt, and how to check.

``bench --reference`` reads MODEL.pt too, and takes ``trust_code_option`` alone.

Command modules are imported to list ``edgeseq --help`` on devices without the toolchain, so
this module does not import ``edgeseq_export``: its choices and defaults are written out here,
and tests/test_export_cli.py checks that they match the toolchain's.
"""

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
