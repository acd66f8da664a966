"""Ready-made scenarios, written out for the cluster at hand (so they can be copied and edited).

Times scale with the largest advert_int, so every fault outlasts Master_Down_Interval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hagate.simulate.cluster import Cluster


PRESETS = {
    "standard": "crash, recovery, graceful stop, script failure and a partition",
    "crash": "the master crashes, then comes back",
    "stop": "the master stops gracefully (priority 0), then starts again",
    "scripts": "every tracked script fails in turn on every node",
    "partition": "the nodes cannot hear each other for a while",
    "loss": "30% of all adverts are lost for a minute",
}


def initial_master(cluster: Cluster) -> str:
    """The host that holds the first VIP once the cluster has settled."""
    from hagate.simulate.runner import simulate
    from hagate.simulate.scenario import Scenario

    quiet = simulate(cluster, Scenario("", (), end=_unit(cluster) * 10), record=False)
    final = quiet.final()
    for host in cluster.hosts:
        if any(final[i.key].vips for i in host.instances if i.key in final):
            return host.name
    return cluster.hosts[0].name


def _unit(cluster: Cluster) -> float:
    return max([1.0, *(i.params.advert_int for i in cluster.instances())])


def _fail_window(cluster: Cluster, host: str, item: str, unit: float) -> float:
    h = cluster.host(host)
    model = h.scripts.get(item) if h else None
    if model is None:
        return 20 * unit
    return max(20 * unit, model.interval * (model.fall + model.rise + 2))


def _t(seconds: float) -> str:
    return f"{seconds:g}s"


def preset(name: str, cluster: Cluster) -> str:
    """The scenario text of ready-made scenario ``name`` for ``cluster``."""
    if name not in PRESETS:
        raise KeyError(name)
    u = _unit(cluster)
    master = initial_master(cluster)
    lines = [f"# {name}: {PRESETS[name]} ({master} is master at the start)"]
    t = 10 * u
    if name in ("standard", "crash"):
        lines += [f"crash {master} at {_t(t)}", f"restart {master} at {_t(t + 20 * u)}"]
        t += 40 * u
    if name in ("standard", "stop"):
        lines += [f"stop {master} at {_t(t)}", f"start {master} at {_t(t + 10 * u)}"]
        t += 30 * u
    if name == "standard":
        item = _first_item(cluster, master)
        if item is not None:
            length = _fail_window(cluster, master, item, u)
            lines.append(f"fail {item} on {master} from {_t(t)} to {_t(t + length)}")
            t += length + 20 * u
    if name == "scripts":
        for host in cluster.hosts:
            for script in sorted(host.scripts):
                length = _fail_window(cluster, host.name, script, u)
                lines.append(f"fail {script} on {host.name} from {_t(t)} to {_t(t + length)}")
                t += length + 20 * u
    if name in ("standard", "partition"):
        lines.append(f"partition at {_t(t)} for {_t(10 * u)}")
        t += 30 * u
    if name == "loss":
        lines.append(f"loss 30% from {_t(t)} to {_t(t + 60 * u)}")
        t += 80 * u
    lines.append(f"end at {_t(t)}")
    return "\n".join(lines) + "\n"


def _first_item(cluster: Cluster, host_name: str) -> str | None:
    host = cluster.host(host_name)
    if host is None:
        return None
    for inst in host.instances:
        if inst.scripts:
            return inst.scripts[0]
    for inst in host.instances:
        if inst.interfaces:
            return inst.interfaces[0]
    return None
