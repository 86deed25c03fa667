"""The app's ``user_middleware`` -> the layers the engine runs in Rust, or why it cannot.

Starlette's ``CORSMiddleware``, ``GZipMiddleware``, ``TrustedHostMiddleware``,
``HTTPSRedirectMiddleware`` and ``SessionMiddleware`` run natively when their module's source is
one the engine was verified against: every release from 0.38.0 to 1.10.0 (``VERIFIED_SOURCES``
maps each source's digest to how it differs: older ones add other ``Vary`` values, compress with
``gzip.GzipFile``, keep sessions in plain dicts; the spec carries those switches). Each is
instantiated exactly as Starlette's ``build_middleware_stack`` would, and the layer is configured
from that instance's attributes, so defaults, ``"*"`` handling, sorting and header text are
Starlette's own. Anything else (another class, a subclass, an unverified Starlette, an
option the engine cannot reproduce) keeps the app on the ASGI tier, with the reason.
"""

from __future__ import annotations

import functools
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

_GZIP_FILE: dict[str, Any] = {
    "framing": "gzipfile",
    "sync_flush": False,
    "identity_vary": False,
    "exclude_mode": "none",
    "partial_passes": False,
    "grpc_alias": False,
}
_GZIP_FILE_IDENTITY: dict[str, Any] = {**_GZIP_FILE, "identity_vary": True, "exclude_mode": "prefix"}
_GZIP_ZLIB_NO_FLUSH: dict[str, Any] = {**_GZIP_FILE_IDENTITY, "framing": "zlib"}
_GZIP_MODERN: dict[str, Any] = {
    "framing": "zlib",
    "sync_flush": True,
    "identity_vary": True,
    "exclude_mode": "media",
    "partial_passes": True,
    "grpc_alias": True,
}

#: sha256 of each middleware module's source -> how that source behaves where releases differ
#: (the switches its layer spec carries; the Rust layers in ``native/middleware/`` read them).
#: Every Starlette release from 0.38.0 to 1.10.0 was read; sources that are the same text share
#: a digest, the comment names the releases.
VERIFIED_SOURCES: dict[str, dict[str, dict[str, Any]]] = {
    "starlette.middleware.cors": {
        # No `Origin`: untouched; `Vary: Origin` only with an explicit origin, through
        # `add_vary_header`; "*" origins mirrored when the request has a cookie.
        "0d4999385a20d6a9b97404375268559a1fc9cfb0cc7c39205b3e631a653cfdfd": {  # 0.38.0-0.38.3
            "origin_only": True,
            "mirror_on_cookie": True,
            "private_network": False,
            "vary_always": False,
        },
        "fa287827199e45a2a19afd3be8370913ec1dd0ad8525ba36de0cd974bac96f4d": {  # 0.38.4-0.46.2
            "origin_only": True,
            "mirror_on_cookie": True,
            "private_network": False,
            "vary_always": False,
        },
        "1e9d4e0450753906d81916ba85f4f306a9242473a15298ebb11af2ac722d1c54": {  # 0.47.0-0.50.0
            "origin_only": True,
            "mirror_on_cookie": True,
            "private_network": False,
            "vary_always": False,
        },
        "92563ec70dd2fa86c16982780b59f2a3aad7a68477f4ef5a945a3d37e2093519": {  # 0.51.0-0.52.1
            "origin_only": True,
            "mirror_on_cookie": True,
            "private_network": True,
            "vary_always": False,
        },
        "8813a95a62b8dc4367c91ef5b78bc7d96c1f096cda24d25d13bb61df1e4283cd": {  # 1.0.0-1.6.0
            "origin_only": True,
            "mirror_on_cookie": False,
            "private_network": True,
            "vary_always": False,
        },
        # `Vary: Origin` on every simple response, every existing value kept.
        "fce9d679b52dd9670f38216daacdcab159c6995cdb5256ee5162dc58d25a5c4f": {  # 1.7.0-1.10.0
            "origin_only": False,
            "mirror_on_cookie": False,
            "private_network": True,
            "vary_always": True,
        },
    },
    "starlette.middleware.gzip": {
        # `gzip.GzipFile`; no `IdentityResponder`, no excluded types; `Vary` added last.
        "e0fc01738d932c6a39d123549fc3cd32776226637a547748048e71d4fcaae20a": _GZIP_FILE,  # 0.38.0-0.38.2
        "8c677f4c5282f0c0e65819c65a3603a8fd07d4e80bbe8d104779a195add1fdd1": _GZIP_FILE,  # 0.38.3
        "1104599ee09b9f9e82a92319ed9d8686dac05bc8f0d32b6eef3ef0c145aa590b": _GZIP_FILE,  # 0.38.4-0.43.0
        "1a2d42aedda5f4616663ee7f68cea9475a67b3edd2e03f1f40531439f76d7de9": _GZIP_FILE,  # 0.44.0-0.45.3
        # `IdentityResponder` (`Vary` for every client); `text/event-stream` prefix excluded.
        "55a34e1d995e192fd85ae781155159f916e859099c408f218e064328b56494e3": _GZIP_FILE_IDENTITY,  # 0.46.0-0.46.2
        # + `http.response.pathsend` passes (the engine's routes never send it).
        "fed86909172d82ec34b4c33a2768839408f9bd996897d4faef7207b5fbdfc501": _GZIP_FILE_IDENTITY,  # 0.47.0-1.3.1
        # zlib's own gzip framing, no flush between streamed chunks.
        "573a5672a91e81dd03737281a92131c1e5bff572cde7071cef1bba458027aa3f": _GZIP_ZLIB_NO_FLUSH,  # 1.4.0
        "bfbe8f8fadd5b560d3d78c736c2b86a54f32209762797d482c4440ba18ed374f": _GZIP_ZLIB_NO_FLUSH,  # 1.4.1
        # `Z_SYNC_FLUSH`, `exclude_content_types` (media types), 206 passes.
        "ee28df06ccd3e21eacc9b96471df3da657b8dd6a980601fe842c9cb0ab96b66b": {  # 1.5.0-1.7.0
            **_GZIP_MODERN,
            "grpc_alias": False,
        },
        # + `application/grpc+...` counts as `application/grpc`.
        "338801845f5a009298229bb5deab0230f354f753d7828fbb29dead677b30943a": _GZIP_MODERN,  # 1.8.0-1.9.0
        "d8396f87b8dbb514bddc885f30f40fc094c31ec7648c7ed14fe0814180fb1159": _GZIP_MODERN,  # 1.10.0
    },
    "starlette.middleware.trustedhost": {
        # `headers.get("host", "").split(":")[0]`, as written.
        "23eb0c8a188692d756ada13111cc596e3e9ec9e458a27353334eff2721806fa6": {  # 0.38.0-0.38.3
            "split_host": True,
            "lowercase": False,
        },
        "7576d6db60b7458369dd3b1d7c2b84d0c352f9564570df01fd2df062bcc44e6f": {  # 0.38.4-0.46.2
            "split_host": True,
            "lowercase": False,
        },
        "6f22825323e07b9e19e0cce7cae9c3ff60ec31f25cd94b1f5786f60eef966137": {  # 0.47.0-1.6.0
            "split_host": True,
            "lowercase": False,
        },
        # `parse_host_header` (invalid: 400); lower-cased from 1.9.
        "5a478228ffe5a15839201a638ccca85971274b4511426a27f0879ef9d4f3e3a5": {  # 1.7.0-1.8.0
            "split_host": False,
            "lowercase": False,
        },
        "c10f831a36a50dfa7119e50cc36022cd9d39b3cf825ba61e63903562ebad5475": {  # 1.9.0-1.10.0
            "split_host": False,
            "lowercase": True,
        },
    },
    "starlette.middleware.httpsredirect": {
        # The URL's text comes from `starlette.datastructures.URL`: see `_helpers`' `plain_url`.
        "48d4e579a6002c6a084d5ef1c1b89ce2007a55874cf1895e6bfca4722533df58": {},  # 0.38.0-1.6.0
        "7e88112b2a4cc7780ace81e026928f2084c674ac4575408402ab244479dd6414": {},  # 1.7.0-1.10.0
    },
    "starlette.middleware.sessions": {
        # A plain dict: written whenever non-empty, cleared whenever emptied; no `Vary`.
        "9d223b8e77063e1bbd40c9a23f66ada806f29b8de66716dd3144d6ba5ddf896f": {  # 0.38.0-0.38.3
            "tracks_access": False,
            "max_age_truthy": True,
        },
        "0a96ea97f0536a756a0db84f19da14acdbc720a7fd0f762e738f1c2597ab1535": {  # 0.38.4-0.46.2
            "tracks_access": False,
            "max_age_truthy": True,
        },
        "2206644e481b3a153db5071e415d0a8cb022369f9d2a19e0707a6ee1561a0d74": {  # 0.47.0-0.52.1
            "tracks_access": False,
            "max_age_truthy": True,
        },
        # `Session`: `accessed` adds `Vary: Cookie`, only `modified` writes.
        "91b4b366130df11da87ddaef31010ccf87b1e311215beb1349fb13290f524866": {  # 1.0.0-1.6.0
            "tracks_access": True,
            "max_age_truthy": True,
        },
        "f18a683533b4dbe296694bed25d35eee5284c4ac58b990fe848442dd376d05fe": {  # 1.7.0
            "tracks_access": True,
            "max_age_truthy": True,
        },
        # `Max-Age=0` written for `max_age=0`.
        "01db9d6bc61987df649aab1f227698ee531a922ecc2d67cdc3108c36909c7ec4": {  # 1.8.0-1.9.0
            "tracks_access": True,
            "max_age_truthy": False,
        },
        "1eb1ccea4379d8f469fba034316a5ae923bf30cdc9e1a6229eff48062bc909a3": {  # 1.10.0
            "tracks_access": True,
            "max_age_truthy": False,
        },
    },
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


@functools.cache
def _helpers() -> dict[str, bool]:
    """What Starlette's shared helpers do where releases differ (each has one of two forms in
    0.38 to 1.10): ``add_vary_header`` keeps every ``Vary`` value (1.9+) or the first;
    ``HTTPConnection.cookies`` reads every ``Cookie`` header (0.49+) or the first; ``URL``
    escapes ``?`` in the path (1.9+) or takes the text as it is."""
    from starlette.datastructures import URL, MutableHeaders
    from starlette.requests import HTTPConnection

    vary = MutableHeaders(raw=[(b"vary", b"a"), (b"vary", b"b")])
    vary.add_vary_header("c")
    cookies = HTTPConnection({"type": "http", "headers": [(b"cookie", b"a=1"), (b"cookie", b"b=2")]}).cookies
    scope = {"type": "http", "scheme": "http", "path": "/a?b", "query_string": b"", "headers": [(b"host", b"h")]}
    return {
        "vary_join_all": vary.getlist("vary") == ["a, b, c"],
        "all_cookie_headers": "b" in cookies,
        "plain_url": "%3F" not in str(URL(scope=scope)),
    }


def _cors(instance: Any, release: dict[str, Any]) -> Spec | str:
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
            "allow_credentials": bool(getattr(instance, "allow_credentials", False)),  # < 1.0: unused
            "allow_private_network": bool(getattr(instance, "allow_private_network", False)),
            "preflight_explicit_allow_origin": bool(instance.preflight_explicit_allow_origin),
            "simple_headers": list(instance.simple_headers.items()),
            "preflight_headers": list(instance.preflight_headers.items()),
            **release,
            # 1.7+ joins every value itself; before, `add_vary_header` does.
            "vary_join_all": release["vary_always"] or _helpers()["vary_join_all"],
        },
    )


def _gzip(instance: Any, release: dict[str, Any]) -> Spec | str:
    level, minimum = instance.compresslevel, instance.minimum_size
    if type(level) is not int or not 0 <= level <= 9:
        return f"compresslevel {level!r} (the engine takes 0 to 9)"
    if type(minimum) is not int:
        return f"minimum_size {minimum!r} is not an int"
    if release["exclude_mode"] == "media":
        exclude = _strings(instance.exclude_content_types)
    elif release["exclude_mode"] == "prefix":  # the module's fixed tuple, matched with startswith
        exclude = _strings(sys.modules["starlette.middleware.gzip"].DEFAULT_EXCLUDED_CONTENT_TYPES)
    else:
        exclude = []
    if exclude is None:
        return "exclude_content_types must be strings"
    return (
        "gzip",
        {
            "minimum_size": max(minimum, 0),
            "compresslevel": level,
            "exclude_content_types": exclude,
            **release,
            "vary_join_all": _helpers()["vary_join_all"],
        },
    )


def _trusted_host(instance: Any, release: dict[str, Any]) -> Spec | str:
    hosts = _strings(instance.allowed_hosts)
    if hosts is None:
        return "allowed_hosts must be strings"
    return (
        "trustedhost",
        {
            "allowed_hosts": hosts,
            "allow_any": bool(instance.allow_any),
            "www_redirect": bool(instance.www_redirect),
            **release,
        },
    )


def _https_redirect(instance: Any, release: dict[str, Any]) -> Spec | str:
    return ("httpsredirect", {"plain_url": _helpers()["plain_url"]})


def _session(instance: Any, release: dict[str, Any]) -> Spec | str:
    import itsdangerous
    from itsdangerous.signer import HMACAlgorithm

    # Starlette < 1.0 keeps the session in a plain dict.
    session_type: Any = getattr(sys.modules["starlette.middleware.sessions"], "Session", dict)

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

    def factory(data: bytes | None) -> Any:  # what SessionMiddleware does with the payload
        if data is None:
            return session_type()
        loaded = json.loads(b64decode(data))
        return loaded if session_type is dict else session_type(loaded)

    def dump(session: Any) -> bytes:
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
            **release,
            "all_cookie_headers": _helpers()["all_cookie_headers"],
            "vary_join_all": _helpers()["vary_join_all"],
        },
    )


#: A middleware class the engine does not run: it runs in Python, with native routes under it.
AROUND_NATIVE = "runs in Python, around the native routes"

_BUILDERS = {
    "CORSMiddleware": ("starlette.middleware.cors", _cors),
    "GZipMiddleware": ("starlette.middleware.gzip", _gzip),
    "TrustedHostMiddleware": ("starlette.middleware.trustedhost", _trusted_host),
    "HTTPSRedirectMiddleware": ("starlette.middleware.httpsredirect", _https_redirect),
    "SessionMiddleware": ("starlette.middleware.sessions", _session),
}


def _builder(cls: Any) -> tuple[str, Callable[[Any, dict[str, Any]], Spec | str]] | None:
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
        return Layer(name, None, AROUND_NATIVE)
    module, build = known
    wrapped = internals.code_origin(cls.__call__)
    if wrapped is not None:  # e.g. Sentry's middleware spans: the class must run as patched
        return Layer(name, None, f"{name}.__call__ is wrapped ({wrapped}): runs in Python")
    release = VERIFIED_SOURCES[module].get(_source_hash(module))
    if release is None:
        import starlette

        return Layer(name, None, f"starlette {starlette.__version__}'s {name} is not the one the engine reproduces")
    try:
        instance = cls(None, *args, **kwargs)
    except Exception as exc:  # Starlette would fail at startup the same way
        return Layer(name, None, f"cannot be instantiated: {exc}")
    spec = build(instance, release)
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
