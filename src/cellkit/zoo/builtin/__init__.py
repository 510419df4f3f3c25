"""cellkit's built-in backbones, registered as a plugin exactly like an installed one.

The zoo registry announces this module to the plugin manager
(:func:`cellkit.plugins.add_builtin_plugin`); the manager calls its hook like any other.

* :mod:`~cellkit.zoo.builtin.simple_cnn`: the report's simple CNNs (``baseline``,
  ``network2``, ``network3``, ``network4``);
* :mod:`~cellkit.zoo.builtin.compact`: ``compact_resnet``, trained from scratch;
* :mod:`~cellkit.zoo.builtin.applications`: ``keras.applications`` backbones.

Example:
    >>> [spec.name for spec in cellkit_register_backbones()][:2]
    ['baseline', 'network2']
"""

from __future__ import annotations

from cellkit.plugins import hookimpl
from cellkit.zoo.builtin import applications, compact, simple_cnn
from cellkit.zoo.spec import BackboneSpec

__all__ = ["PLUGIN_NAME", "cellkit_register_backbones"]

#: The name this plugin is registered under.
PLUGIN_NAME = "cellkit.zoo.builtin"


@hookimpl
def cellkit_register_backbones() -> list[BackboneSpec]:
    """The built-in backbones: simple CNNs, compact_resnet, keras.applications networks."""
    return [*simple_cnn.SPECS, *compact.SPECS, *applications.SPECS]
