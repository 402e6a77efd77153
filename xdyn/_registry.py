"""Name -> class tables that family base classes fill from ``__init_subclass__``.

One mechanism for every family whose members are classes (systems,
assimilators, observation operators): a subclass that declares a class-level ``name`` (and
optionally ``aliases``) in its own body registers itself when it is defined,
so a new system or assimilator is one new file and nothing else. See the
"Registries" section of the architecture page in the docs.
"""

from __future__ import annotations

import difflib
import warnings

__all__ = ["Registry"]


class Registry:
    """A name -> class table for one family, filled by the family's base class.

    Keys are the class's declared ``name``, its ``aliases`` and its class name;
    lookups are case-insensitive. A class registers only when its own body
    declares ``name`` and its class name does not start with ``_``: an
    intermediate base (``BaseEnsembleAssimilator``) or a private helper stays
    out of the listings, and a subclass that keeps its parent's ``name`` does
    not shadow it; such a public subclass is still found by its exact class
    name (so that a Dataset's recorded ``system`` attr rebuilds it).

    Parameters
    ----------
    kind : str
        What the family is called in messages (``"assimilation method"``).

    Examples
    --------
    >>> reg = Registry("widget")
    >>> class Widget:
    ...     def __init_subclass__(cls, **kwargs):
    ...         super().__init_subclass__(**kwargs)
    ...         reg.add(cls)
    >>> class Gear(Widget):
    ...     name = "gear"
    ...     aliases = ("cog",)
    >>> class _Helper(Widget):
    ...     name = "helper"
    >>> reg.get("COG").__name__, reg.names()
    ('Gear', ['gear'])
    >>> reg.get("gaer")
    Traceback (most recent call last):
    ...
    ValueError: unknown widget 'gaer'; did you mean 'gear'? Known: ['gear']
    """

    def __init__(self, kind: str, *, warn_unnamed: bool = False):
        self.kind = kind
        # whether a different class taking an unnamed class's name warns (observation
        # operators: their class name is what observation attrs record)
        self.warn_unnamed = warn_unnamed
        self._classes: dict[str, type] = {}  # key (lower case) -> class
        self._primary: dict[str, type] = {}  # declared name -> class
        # public subclasses that declare no name of their own, by class name: a
        # Dataset's attrs record ``type(obj).__name__``, which must rebuild them
        self._unnamed: dict[str, type] = {}

    @staticmethod
    def registrable(cls) -> bool:
        """Whether ``cls`` declares its own ``name`` and is public."""
        return "name" in vars(cls) and not cls.__name__.startswith("_")

    def add(self, cls) -> None:
        """Register ``cls`` under its ``name``, ``aliases`` and class name (if registrable)."""
        if not self.registrable(cls):
            if not cls.__name__.startswith("_"):
                key = cls.__name__.lower()
                previous = self._unnamed.get(key)
                if self.warn_unnamed and previous is not None and _origin(previous) != _origin(cls):
                    warnings.warn(
                        f"{self.kind} name {cls.__name__!r} of {_origin(cls)} replaces "
                        f"{_origin(previous)}; give your class another name to keep both",
                        UserWarning,
                        stacklevel=4,
                    )
                self._unnamed[key] = cls
            return
        aliases = vars(cls).get("aliases", ())
        if isinstance(aliases, str):
            aliases = (aliases,)
        keys = dict.fromkeys(k.lower() for k in (cls.name, *aliases, cls.__name__))
        for key in keys:
            previous = self._classes.get(key)
            if previous is not None and _origin(previous) != _origin(cls):
                warnings.warn(
                    f"{self.kind} name {key!r} of {_origin(cls)} replaces {_origin(previous)}; "
                    "give your class another name to keep both",
                    UserWarning,
                    stacklevel=4,
                )
            self._classes[key] = cls
        for name, old in list(self._primary.items()):
            if _origin(old) == _origin(cls):  # a re-run notebook cell may rename it
                del self._primary[name]
        self._primary[cls.name] = cls

    def get(self, name: str) -> type:
        """The class registered under ``name`` (case-insensitive).

        Raises
        ------
        ValueError
            No such name; the message suggests the closest known names.
        """
        key = str(name).lower()
        if key in self._classes:
            return self._classes[key]
        if key in self._unnamed:
            return self._unnamed[key]
        known = self.names()
        close = difflib.get_close_matches(key, list(self._classes), n=6, cutoff=0.6)
        # one suggestion per class, under its declared name
        close = list(dict.fromkeys(self._classes[c].name for c in close))[:3]
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown {self.kind} {name!r}{hint} Known: {known}"
                         if hint else f"unknown {self.kind} {name!r}; known: {known}")

    def names(self) -> list[str]:
        """The declared names, sorted (one per class)."""
        return sorted(self._primary)

    def classes(self) -> dict[str, type]:
        """Declared name -> class, one entry per registered class."""
        return dict(sorted(self._primary.items()))

    def by_class_name(self) -> dict[str, type]:
        """Class name -> class, for every registered class (named or not)."""
        out = {cls.__name__: cls for cls in self._unnamed.values()}
        out.update({cls.__name__: cls for cls in self._classes.values()})
        return dict(sorted(out.items()))

    def lookup_table(self) -> dict[str, type]:
        """Every key (names, aliases, class names; lower case) -> class."""
        return dict(self._classes)


def _origin(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
