"""The engine's floor served two ways (issue 14, "The provider"): Python dynamic provider or provider plugin.

One resource type shaped like the project's Infisical folder (owner, environment, path, a fingerprints
map, lists, five secret inputs), whose create/update/read/delete do only a trivial local write, served
(a) as a Python dynamic provider (`pulumi.dynamic`) and (b) as a real provider plugin written with the
SDK's provider framework (`pulumi.provider.experimental`). `python -m bench.provider_floor --help`;
docs/decisions/0038-dynamic-or-plugin-provider.md holds the figures and the decision.
"""
