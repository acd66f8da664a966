"""hagate.simulate: keepalived.conf clusters on a virtual-clock link (`hagate simulate`).

``load_cluster(files)`` -> :class:`Cluster`; ``parse(text, names)`` -> :class:`Scenario`;
``simulate(cluster, scenario)`` -> :class:`Result`; ``verdicts(result)``. See docs/simulate.md.
"""
