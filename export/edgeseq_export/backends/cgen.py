"""Small helpers that write C99 source text: identifiers, literals and constant arrays.

Each is a pure function of its arguments (tested by its doctest), so that ``codegen`` reads as
"which data goes where" and never as string fiddling.
"""

import math
import re

import numpy as np
from edgeseq_runtime import EdgeseqError

# C99, C11 and C23 keywords, plus C++'s: a generated header is also included from C++ (Arduino).
RESERVED_WORDS = frozenset("""
    auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef
    union unsigned void volatile while _Bool _Complex _Imaginary _Alignas _Alignof _Atomic
    _Generic _Noreturn _Static_assert _Thread_local alignas alignof bool constexpr false nullptr
    static_assert thread_local true typeof typeof_unqual _BitInt _Decimal32 _Decimal64 _Decimal128
    and and_eq asm bitand bitor catch char8_t char16_t char32_t class compl concept consteval
    constinit co_await co_return co_yield const_cast decltype delete dynamic_cast explicit export
    friend mutable namespace new noexcept not not_eq operator or or_eq private protected public
    reinterpret_cast requires static_cast template this throw try typeid typename using virtual
    wchar_t xor xor_eq
""".split())

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
VALUES_PER_LINE = 8
# Of a name or file name shown in a comment: enough to recognise it. Escapes can make it up to
# 9 times longer, still far inside the 4095 characters a C99 compiler must take in one line.
COMMENT_CHARACTERS = 120
_NOT_COMMENT_SAFE = re.compile(r"[^\x20-\x5b\x5d-\x7e]")  # printable ASCII but the backslash
_COMMENT_PAIR_OR_EDGE = re.compile(r"(?<=\*)(?=/)|(?<=/)(?=\*)|(?<=\?)(?=\?)|\A(?=[*/?])|(?<=[*/?])\Z")


class CodegenError(EdgeseqError):
    """A model or an option that cannot be turned into C; the message says which and why."""


def check_identifier(name: str, what: str = "name") -> str:
    """``name`` if it is a valid C identifier that is neither a keyword (of C or C++) nor
    reserved for the implementation; CodegenError otherwise.

    >>> check_identifier("gru_model")
    'gru_model'
    >>> check_identifier("int")
    Traceback (most recent call last):
    ...
    edgeseq_export.backends.cgen.CodegenError: name 'int' is a C or C++ keyword; choose another
    >>> check_identifier("2fast")
    Traceback (most recent call last):
    ...
    edgeseq_export.backends.cgen.CodegenError: name '2fast' is not a C identifier (letters, digits and '_', not starting with a digit)
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise CodegenError(f"{what} {name!r} is not a C identifier "
                           f"(letters, digits and '_', not starting with a digit)")
    if name in RESERVED_WORDS:
        raise CodegenError(f"{what} {name!r} is a C or C++ keyword; choose another")
    if name.startswith("__") or re.match(r"_[A-Z]", name) or "__" in name:
        raise CodegenError(f"{what} {name!r} is reserved for the compiler "
                           f"(a leading '_' + capital, or '__'); choose another")
    return name


def identifier_from(text: str) -> str:
    """A C identifier made from arbitrary text, such as a file name (not checked for keywords).

    >>> identifier_from("lstm-16x64 (int8)")
    'lstm_16x64_int8'
    >>> identifier_from("3d")
    'model_3d'
    """
    name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", text)).strip("_") or "model"
    return f"model_{name}" if name[0].isdigit() else name


def float_literal(value) -> str:
    """A float32 as the shortest C literal that reads back as exactly the same float.

    >>> [float_literal(v) for v in (0.1, -2.0, 1e-05, 3e38, float("inf"), float("nan"))]
    ['0.1f', '-2.0f', '1e-05f', '3e+38f', 'INFINITY', 'NAN']
    """
    value = np.float32(value)
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "-INFINITY"
    return str(value) + "f"  # str() of a float32: the fewest digits that round-trip


def c_array(ctype: str, name: str, values, comment: str = "") -> str:
    """A ``static const`` array definition, VALUES_PER_LINE values to a line.

    >>> print(c_array("int8_t", "q", [1, -2, 3], "int8 weights"))
    /* int8 weights */
    static const int8_t q[3] = {
        1, -2, 3,
    };
    """
    values = np.asarray(values).ravel()
    if values.size == 0:
        raise ValueError(f"C has no empty arrays ({name})")
    if values.dtype.kind == "f":
        items = [float_literal(v) for v in values]
    else:
        items = [str(int(v)) for v in values]
    lines = [", ".join(items[i:i + VALUES_PER_LINE]) + "," for i in range(0, len(items), VALUES_PER_LINE)]
    head = f"/* {comment_text(comment)} */\n" if comment else ""
    body = "\n".join(f"    {line}" for line in lines)
    return f"{head}static const {ctype} {name}[{values.size}] = {{\n{body}\n}};"


def comment_text(text) -> str:
    r"""Text from a model file (a name, a file name) as data inside a C block comment.

    The preprocessor reads a comment before the compiler does: a backslash-newline (or the
    trigraph ``??/`` and a newline) splices the next line on, so ``*\<newline>/`` closes the
    comment and what follows compiles. So the text keeps only printable ASCII without ``\``;
    anything else is shown as ``<U+XXXX>``. A space goes between the two characters of every
    ``*/``, ``/*`` and ``??``, and in front of (or after) a ``*``, ``/`` or ``?`` that starts
    (or ends) the text, so that it pairs with nothing around it either. At most COMMENT_CHARACTERS
    of it are kept.

    >>> comment_text("a */ b /* c")
    'a * / b / * c'
    >>> comment_text("h*\\\n/ int evil; /*")
    'h*<U+005C><U+000A>/ int evil; / * '
    >>> comment_text("a??/ caf\u00e9\x00")
    'a? ?/ caf<U+00E9><U+0000>'
    >>> len(comment_text("x" * 1000)), comment_text("x" * 1000)[-4:]
    (123, 'x...')
    """
    text = str(text)
    if len(text) > COMMENT_CHARACTERS:
        text = text[:COMMENT_CHARACTERS] + "..."
    text = _NOT_COMMENT_SAFE.sub(lambda found: f"<U+{ord(found.group()):04X}>", text)
    return _COMMENT_PAIR_OR_EDGE.sub(" ", text)
