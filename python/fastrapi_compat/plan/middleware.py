"""The app's ``user_middleware`` -> the layers the engine runs in Rust, or why it cannot.

Starlette's ``CORSMiddleware``, ``GZipMiddleware``, ``TrustedHostMiddleware``,
``HTTPSRedirectMiddleware`` and ``SessionMiddleware`` run natively when their module's source is
one the engine was verified against (Starlette's behaviour changes between releases: older
ones add other ``Vary`` values, compress with ``gzip.GzipFile``, keep sessions in plain dicts).
Each is instantiated exactly as Starlette's ``build_middleware_stack`` would, and the layer is
configured from that instance's attributes, so defaults, ``"*"`` handling, sorting and header
text are Starlette's own. Anything else (another class, a subclass, an unverified Starlette, an
option the engine cannot reproduce) keeps the app on the ASGI tier, with the reason.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import sys
from base64 import b64decode, b64encode
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastrapi_compat._native import MiddlewareStack
from fastrapi_compat.plan import internals

#: sha256 of each middleware module's source, per verified Starlette release.
VERIFIED_SOURCES = {
    "starlette.middleware.cors": {"fce9d679b52dd9670f38216daacdcab159c6995cdb5256ee5162dc58d25a5c4f"},  # 1.10.0
    "starlette.middleware.gzip": {"d8396f87b8dbb514bddc885f30f40fc094c31ec7648c7ed14fe0814180fb1159"},  # 1.10.0
    "starlette.middleware.trustedhost": {"c10f831a36a50dfa7119e50cc36022cd9d39b3cf825ba61e63903562ebad5475"},  # 1.10.0
    "starlette.middleware.httpsredirect": {
        "7e88112b2a4cc7780ace81e026928f2084c674ac4575408402ab244479dd6414"
    },  # 1.10.0
    "starlette.middleware.sessions": {"1eb1ccea4379d8f469fba034316a5ae923bf30cdc9e1a6229eff48062bc909a3"},  # 1.10.0
}

Spec = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Layer:
    name: str
    spec: Spec | None
    reason: str


def _source_hash(module_name: str) -> str:
    module = sys.modules.get(module_name)
    if module is None:
        return ""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return ""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def _strings(value: Any) -> list[str] | None:
    """A collection of ``str`` as a list (``None`` for a lone string or anything else, whose
    ``in`` Starlette would evaluate differently)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        return None
    items = list(value)
    return items if all(isinstance(item, str) for item in items) else None


def _cors(instance: Any) -> Spec | str:
    origins = _strings(instance.allow_origins)
    methods = _strings(instance.allow_methods)
    if origins is None or methods is None:
        return "allow_origins and allow_methods must be collections of strings"
    regex = instance.allow_origin_regex
    if regex is not None and (not isinstance(regex.pattern, str) or regex.flags != re.UNICODE):
        return "allow_origin_regex with flags"
    return (
        "cors",
        {
            "allow_all_origins": bool(instance.allow_all_origins),
            "allow_origins": origins,
            "allow_origin_regex": None if regex is None else regex.pattern,
            "allow_methods": methods,
            "allow_all_headers": bool(instance.allow_all_headers),
            "allow_headers": list(instance.allow_headers),
            "allow_credentials": bool(instance.allow_credentials),
            "allow_private_network": bool(instance.allow_private_network),
            "preflight_explicit_allow_origin": bool(instance.preflight_explicit_allow_origin),
            "simple_headers": list(instance.simple_headers.items()),
            "preflight_headers": list(instance.preflight_headers.items()),
        },
    )


def _gzip(instance: Any) -> Spec | str:
    level, minimum = instance.compresslevel, instance.minimum_size
    if type(level) is not int or not 0 <= level <= 9:
        return f"compresslevel {level!r} (the engine takes 0 to 9)"
    if type(minimum) is not int:
        return f"minimum_size {minimum!r} is not an int"
    exclude = _strings(instance.exclude_content_types)
    if exclude is None:
        return "exclude_content_types must be strings"
    return ("gzip", {"minimum_size": max(minimum, 0), "compresslevel": level, "exclude_content_types": exclude})


def _trusted_host(instance: Any) -> Spec | str:
    hosts = _strings(instance.allowed_hosts)
    if hosts is None:
        return "allowed_hosts must be strings"
    return (
        "trustedhost",
        {"allowed_hosts": hosts, "allow_any": bool(instance.allow_any), "www_redirect": bool(instance.www_redirect)},
    )


def _https_redirect(instance: Any) -> Spec | str:
    return ("httpsredirect", {})


def _session(instance: Any) -> Spec | str:
    import itsdangerous
    from itsdangerous.signer import HMACAlgorithm
    from starlette.middleware.sessions import Session

    def is_sha1(digest: Any) -> bool:
        try:
            return bool(digest(b"").name == "sha1")
        except Exception:
            return False

    signer = instance.signer
    if (
        type(signer) is not itsdangerous.TimestampSigner
        or signer.key_derivation != "django-concat"
        or not is_sha1(signer.digest_method)
        or type(signer.algorithm) is not HMACAlgorithm
        or not is_sha1(signer.algorithm.digest_method)
        or signer.sep != b"."
        or len(signer.secret_keys) != 1
    ):
        return "a session signer other than Starlette's TimestampSigner"
    max_age = instance.max_age
    if max_age is not None and type(max_age) is not int:
        return f"max_age {max_age!r} is not an int"
    try:
        for text in (instance.session_cookie, instance.path, instance.security_flags):
            text.encode("latin-1")
    except (AttributeError, UnicodeEncodeError):
        return "cookie name, path or flags that are not latin-1 text"

    def factory(data: bytes | None) -> Session:  # what SessionMiddleware does with the payload
        return Session(json.loads(b64decode(data))) if data is not None else Session()

    def dump(session: Session) -> bytes:
        return b64encode(json.dumps(session).encode("utf-8"))

    return (
        "session",
        {
            "session_cookie": instance.session_cookie,
            "key": signer.derive_key(),
            "max_age": max_age,
            "path": instance.path,
            "security_flags": instance.security_flags,
            "factory": factory,
            "dump": dump,
        },
    )


_BUILDERS = {
    "CORSMiddleware": ("starlette.middleware.cors", _cors),
    "GZipMiddleware": ("starlette.middleware.gzip", _gzip),
    "TrustedHostMiddleware": ("starlette.middleware.trustedhost", _trusted_host),
    "HTTPSRedirectMiddleware": ("starlette.middleware.httpsredirect", _https_redirect),
    "SessionMiddleware": ("starlette.middleware.sessions", _session),
}


def _builder(cls: Any) -> tuple[str, Callable[[Any], Spec | str]] | None:
    """The builder for one of Starlette's own classes (not a subclass), else None."""
    known = _BUILDERS.get(getattr(cls, "__name__", ""))
    if known is None or getattr(cls, "__module__", None) != known[0]:
        return None
    module = sys.modules.get(known[0])
    return known if module is not None and getattr(module, cls.__name__, None) is cls else None


def _unpack(entry: Any) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    cls = entry.cls
    args = tuple(getattr(entry, "args", ()) or ())
    kwargs = dict(getattr(entry, "kwargs", {}) or getattr(entry, "options", {}) or {})
    return cls, args, kwargs


def layer(entry: Any) -> Layer:
    """One ``user_middleware`` entry as a native layer, or the reason it is not one."""
    cls, args, kwargs = _unpack(entry)
    name = getattr(cls, "__name__", repr(cls))
    known = _builder(cls)
    if known is None:
        return Layer(name, None, "runs in Python, around the native routes")
    module, build = known
    wrapped = internals.code_origin(cls.__call__)
    if wrapped is not None:  # e.g. Sentry's middleware spans: the class must run as patched
        return Layer(name, None, f"{name}.__call__ is wrapped ({wrapped}): runs in Python")
    if _source_hash(module) not in VERIFIED_SOURCES[module]:
        import starlette

        return Layer(name, None, f"starlette {starlette.__version__}'s {name} is not the one the engine reproduces")
    try:
        instance = cls(None, *args, **kwargs)
    except Exception as exc:  # Starlette would fail at startup the same way
        return Layer(name, None, f"cannot be instantiated: {exc}")
    spec = build(instance)
    if isinstance(spec, str):
        return Layer(name, None, spec)
    try:
        MiddlewareStack([spec])
    except ValueError as exc:
        return Layer(name, None, f"option the engine cannot take: {exc}")
    return Layer(name, spec, "")


def layers(app: Any) -> list[Layer]:
    """The app's ``user_middleware``, outermost first."""
    return [layer(entry) for entry in getattr(app, "user_middleware", None) or []]


def stack(found: list[Layer]) -> MiddlewareStack | None:
    """The engine's stack for ``found`` when every layer is native (None when there are none)."""
    if not found:
        return None
    return MiddlewareStack([entry.spec for entry in found if entry.spec is not None])
