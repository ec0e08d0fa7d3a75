"""CVRP mode and ``civic routes vrplib``: feasible answers whose printed cost is the true cost."""

from __future__ import annotations

import argparse
import itertools
import json
import math

import pytest

from routing import cli
from routing.cvrp import solve_cvrp
from routing.vrplib_io import read_cvrp, rounded_euclidean, route_cost
from tests.routing.conftest import DATA

INSTANCE = DATA / "A-n32-k5.vrp"


def parse_vrp(path):
    """Coordinates and demands by file node id, read without the package under test."""
    coords, demands, depot, section = {}, {}, None, None
    capacity = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("CAPACITY"):
            capacity = int(line.split(":")[1])
        elif line.endswith("SECTION"):
            section = line
        elif line in ("EOF", "-1"):
            section = None if line == "EOF" else section
        elif section == "NODE_COORD_SECTION" and line:
            node, x, y = line.split()
            coords[int(node)] = (float(x), float(y))
        elif section == "DEMAND_SECTION" and line:
            node, demand = line.split()
            demands[int(node)] = int(demand)
        elif section == "DEPOT_SECTION" and line and depot is None:
            depot = int(line)
    return coords, demands, depot, capacity


def run_cli(argv, capsys):
    parser = argparse.ArgumentParser(prog="civic")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr()


def test_rounded_euclidean_is_tsplib_nint():
    matrix = rounded_euclidean([[0, 0], [3, 4], [0.5, 0], [1.5, 0]])
    assert matrix[0, 1] == 5
    assert matrix[0, 2] == 1  # 0.5 rounds up, unlike round-half-even
    assert matrix[0, 3] == 2


@pytest.mark.parametrize("engine", ["ortools", "pyvrp", "hybrid"])
def test_every_engine_returns_a_feasible_solution(engine):
    instance = read_cvrp(INSTANCE)
    cost, routes = solve_cvrp(instance, 1.0, engine=engine)
    assert sorted(n for r in routes for n in r) == list(range(1, 32))
    assert all(instance.demands[r].sum() <= instance.capacity for r in routes)
    assert cost == route_cost(instance.distances, routes)
    assert cost >= 784  # the proven optimum


def test_cli_vrplib_json_is_feasible_and_its_cost_is_recomputable(capsys):
    code, out = run_cli(["routes", "vrplib", str(INSTANCE), "--seconds", "2", "--json"], capsys)
    assert code == 0
    answer = json.loads(out.out)
    assert set(answer) == {"cost", "routes"}

    coords, demands, depot, capacity = parse_vrp(INSTANCE)
    customers = sorted(c for route in answer["routes"] for c in route)
    assert customers == sorted(n for n in coords if n != depot)
    total = 0
    for route in answer["routes"]:
        assert sum(demands[c] for c in route) <= capacity
        path = [depot, *route, depot]
        total += sum(
            int(math.dist(coords[a], coords[b]) + 0.5) for a, b in itertools.pairwise(path)
        )
    assert total == answer["cost"]
    assert answer["cost"] <= 784 * 1.02


def test_cli_vrplib_rejects_missing_files(capsys, tmp_path):
    code, out = run_cli(
        ["routes", "vrplib", str(tmp_path / "nope.vrp"), "--seconds", "1", "--json"], capsys
    )
    assert code == 2
    assert "no such file" in out.err


def test_cli_synth_prints_a_summary(capsys, tmp_path):
    code, out = run_cli(
        [
            "routes",
            "synth",
            "--bins",
            "40",
            "--trucks",
            "2",
            "--seconds",
            "1",
            "--json",
            "--geojson",
            str(tmp_path / "r.geojson"),
        ],
        capsys,
    )
    summary = json.loads(out.out)
    assert code == 0
    assert summary["bins"] == 40
    assert summary["unserved_must_collect"] == 0
    assert summary["violations"] == 0
    assert summary["tip_trips"] >= 1
    assert (tmp_path / "r.geojson").exists()
