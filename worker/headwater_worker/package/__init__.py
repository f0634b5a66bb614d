"""The Package worker (seed 003): clip datasets to a boundary and publish them as a frictionless data package.

`command.py` runs one stage of a Package (`setup`, `process --processor dataset.version`, `finalise`) as a
Job; processors are plugins found through the `headwater.package.processors` entry-point group.
"""
