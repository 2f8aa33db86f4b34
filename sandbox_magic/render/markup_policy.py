"""What remote markup may contain: the allow-lists behind `markup_sanitiser`.

Everything not named here is removed. Elements are kept for the layout and
content of ordinary outputs (pandas and Styler tables, Markdown renderings,
matplotlib and other SVG, audio and video players); nothing here can run script:

- no element that runs or embeds script or documents (``script``, ``iframe``,
  ``object``, ``embed``, ``form``, ``base``, ``meta``, ``link``, ``template``,
  SVG ``foreignObject``, ``animate``, ``set``, ...);
- no event handler attribute, no ``srcdoc``, ``action``/``formaction``, no
  ``name`` (DOM clobbering of ``document``), no ``data-*`` (JupyterLab acts on some,
  e.g. ``data-commandlinker-command`` runs a command when clicked);
- URLs only as ``http``, ``https``, ``mailto``, relative (links only), or ``data:``
  media on media elements, judged after the browser's own clean-up of the URL;
- SVG ``use`` only points inside the same document.

``<style>`` elements and ``style`` attributes stay: Styler tables and matplotlib
SVG need them, and CSS cannot run script in current browsers (it can restyle the
page, which is the price of keeping these outputs intact).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_TAGS",
    "CONTENT_DROPPED_TAGS",
    "URL_ATTRIBUTES",
    "url_is_safe",
]


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_HTML_TAGS: Final = _names(
    """a abbr acronym address area article aside audio b bdi bdo big blockquote br caption
    center cite code col colgroup data dd del details dfn div dl dt em figcaption figure
    font footer h1 h2 h3 h4 h5 h6 header hgroup hr i img ins kbd li main map mark nav ol
    p picture pre q rp rt rtc ruby s samp section small source span strike strong style
    sub summary sup table tbody td tfoot th thead time tr track tt u ul var video wbr
    """
)

# SVG elements by the name the HTML parser gives them (camelCase kept). Left out on
# purpose: script, foreignObject, animate*, set, discard, handler, listener, feImage
# (loads a URL as an image) is kept since images cannot run script.
_SVG_TAGS: Final = _names(
    """svg a circle clipPath defs desc ellipse filter g image line linearGradient marker
    mask metadata path pattern polygon polyline radialGradient rect stop switch symbol
    text textPath title tspan use view feBlend feColorMatrix feComponentTransfer
    feComposite feConvolveMatrix feDiffuseLighting feDisplacementMap feDistantLight
    feDropShadow feFlood feFuncA feFuncB feFuncG feFuncR feGaussianBlur feImage feMerge
    feMergeNode feMorphology feOffset fePointLight feSpecularLighting feSpotLight feTile
    feTurbulence
    """
)

ALLOWED_TAGS: Final = _HTML_TAGS | _SVG_TAGS

#: Removed together with everything inside them (their content is code or a
#: document, never text meant for the reader).
CONTENT_DROPPED_TAGS: Final = _names(
    """script noscript noembed noframes iframe frame frameset object embed applet
    template xmp plaintext textarea select math foreignObject"""
)

_HTML_ATTRIBUTES: Final = _names(
    """abbr align alt axis bgcolor border cellpadding cellspacing char charoff cite class
    clear color colspan controls coords datetime default dir disabled face frame headers
    height high hreflang href id kind label lang loop low max min muted open optimum
    media playsinline poster preload reversed role rowspan rules scope scoped shape size span src
    srclang start style summary target title translate type valign value width"""
)

# SVG attributes by local name, as the HTML parser gives them (camelCase kept):
# ``href`` is also ``xlink:href``, ``xlink`` the ``xmlns:xlink`` declaration,
# ``space`` is ``xml:space``.
_SVG_ATTRIBUTES: Final = _names(
    """accent-height alignment-baseline amplitude azimuth baseFrequency baseline-shift
    bias class clip clip-path clip-rule clipPathUnits color color-interpolation
    color-interpolation-filters color-profile color-rendering cx cy d diffuseConstant
    direction display divisor dominant-baseline dur dx dy edgeMode elevation exponent
    fill fill-opacity fill-rule filter filterUnits flood-color flood-opacity font-family
    font-size font-size-adjust font-stretch font-style font-variant font-weight fr fx fy
    gradientTransform gradientUnits height href id image-rendering in in2 intercept k k1
    k2 k3 k4 kernelMatrix kernelUnitLength kerning lang length lengthAdjust
    letter-spacing lighting-color limitingConeAngle marker-end marker-mid marker-start
    markerHeight markerUnits markerWidth mask mask-type maskContentUnits maskUnits
    method mode numOctaves offset opacity operator order orient overflow paint-order
    path pathLength patternContentUnits patternTransform patternUnits points
    pointer-events pointsAtX pointsAtY pointsAtZ preserveAlpha preserveAspectRatio
    primitiveUnits r radius refX refY result rotate rx ry scale seed shape-rendering side
    slope spacing specularConstant specularExponent spreadMethod startOffset stdDeviation
    stitchTiles stop-color stop-opacity stroke stroke-dasharray stroke-dashoffset
    stroke-linecap stroke-linejoin stroke-miterlimit stroke-opacity stroke-width style
    surfaceScale systemLanguage tabindex tableValues targetX targetY text-anchor
    text-decoration text-orientation text-rendering textLength transform
    transform-origin type u1 u2 unicode unicode-bidi vector-effect version
    vert-adv-y vert-origin-x vert-origin-y viewBox visibility width word-spacing wrap
    writing-mode x x1 x2 xChannelSelector xlink space xmlns y y1 y2 yChannelSelector
    z zoomAndPan"""
)

#: Allowed on every allowed element (the parser adjusts SVG names per element, so
#: one set serves both vocabularies).
ALLOWED_ATTRIBUTES: Final = _HTML_ATTRIBUTES | _SVG_ATTRIBUTES | frozenset({"aria-label"})

#: Attributes whose value the browser loads or navigates to.
URL_ATTRIBUTES: Final = frozenset({"href", "src", "poster", "cite", "xlink"})

_SCHEME: Final = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
_TAB_OR_NEWLINE: Final = re.compile(r"[\t\n\r]")
_EDGE_CONTROLS: Final = "".join(chr(c) for c in range(0x21))
_SAFE_SCHEMES: Final = frozenset({"http", "https", "mailto"})
_MEDIA_TAGS: Final = frozenset({"img", "image", "audio", "video", "source", "track", "feImage"})
_DATA_MEDIA: Final = re.compile(
    r"data:(?:image/(?:png|jpeg|jpg|gif|webp|bmp|avif|svg\+xml)|audio/[a-z0-9.+\-]+"
    r"|video/[a-z0-9.+\-]+)[;,]",
    re.IGNORECASE,
)


def _browser_url(value: str) -> str:
    """``value`` the way a browser's URL parser sees it: edge controls and spaces
    stripped, tabs and newlines removed anywhere."""
    return _TAB_OR_NEWLINE.sub("", value.strip(_EDGE_CONTROLS))


def url_is_safe(tag: str, attribute: str, value: str) -> bool:
    """True when ``value`` in ``attribute`` of ``tag`` cannot run script when loaded
    or followed.

    URLs the browser loads by itself (``src``, ``poster``, an SVG image's ``href``)
    must be absolute: a relative one would be fetched from the user's own Jupyter
    server, with the user's cookies, and no remote output has a reason to.
    """
    if attribute == "xlink":  # the xmlns:xlink declaration, not a link
        return value == "http://www.w3.org/1999/xlink"
    url = _browser_url(value)
    if tag == "use":
        return url.startswith("#")  # external or data: references can carry script
    scheme = _SCHEME.match(url)
    if scheme is None:
        loads = attribute in ("src", "poster") or tag in ("image", "feImage")
        # Relative: no ":" before the first "/", "?" or "#" (else it is no URL at all).
        return not loads and ":" not in re.split(r"[/?#]", url, maxsplit=1)[0]
    name = scheme.group(1).lower()
    if name in _SAFE_SCHEMES:
        return True
    if name == "data":
        return (
            tag in _MEDIA_TAGS
            and attribute in ("src", "href", "poster")
            and _DATA_MEDIA.match(url) is not None
        )
    return False
