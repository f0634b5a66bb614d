"""Wrapper: generated collectors for one sustainability indicator each (seed 000).

`contract` is what a collector module may rely on, `sample` what generation sees of a source, `template`
the offline generator, `validation` and `sandbox` the checks before a module is stored, `runner` what runs
it and writes its points.
"""
