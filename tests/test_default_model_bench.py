"""bench.default_model: the shipping and vectorisation rules, on made-up figures."""

from __future__ import annotations

from bench.default_model import DEV_SETS, grouped, verdicts


def figures(iou: float, epe: float) -> dict:
    return {"overall": {"iou": iou, "epe_mean_nm": epe, "count": 300}}


def sets(candidate: dict[str, tuple[float, float]], vector_epe: float = 1.0) -> dict:
    shipped = {"test": (0.976, 1.83), "lo_fam": (0.90, 4.0), "lo_fam_rand": (0.80, 6.0),
               "lo_region": (0.85, 5.0), "in_fam": (0.95, 2.0)}
    out = {}
    for name in DEV_SETS:
        iou, epe = candidate.get(name, shipped[name])
        out[name] = {"methods": {"shipped": figures(*shipped[name]), "candidate": figures(iou, epe),
                                 "candidate+vector": figures(iou, vector_epe)}}
    return out


def test_ships_only_when_better_on_both_leave_out_sets_and_no_worse_on_the_named_profiles() -> None:
    better = {"lo_fam": (0.95, 3.0), "lo_fam_rand": (0.90, 4.0)}
    assert verdicts(sets(better))["ship"]
    assert not verdicts(sets({"lo_fam": (0.95, 3.0)}))["ship"]  # lo_fam_rand not better
    worse_named = {**better, "test": (0.9735, 1.83)}  # IoU down 0.0025 > 0.002
    assert not verdicts(sets(worse_named))["ship"]
    assert verdicts(sets({**better, "test": (0.975, 1.90)}))["ship"]  # within the noise allowed


def test_the_vectorisation_is_kept_when_it_lowers_epe_on_four_of_five_sets() -> None:
    assert verdicts(sets({}, vector_epe=1.0))["vectorisation"]["keep"]  # below every raw EPE
    assert not verdicts(sets({}, vector_epe=9.0))["vectorisation"]["keep"]


def test_groups_hold_families_regions_and_profiles() -> None:
    rows = [{"family": "contacts", "profile": "random", "region": "coarse_pixel", "iou": 0.5,
             "epe_mean_nm": 2.0, "cd_abs_error_nm": 1.0},
            {"family": "lines", "profile": "random", "region": "train", "iou": 1.0,
             "epe_mean_nm": float("inf"), "cd_abs_error_nm": 1.0}]
    groups = grouped(rows)
    assert groups["overall"] == {"count": 2, "iou": 0.75, "epe_mean_nm": 2.0, "epe_missing": 1,
                                 "cd_abs_error_nm": 1.0}
    assert set(groups) == {"overall", "family:contacts", "family:lines", "profile:random",
                           "region:coarse_pixel", "region:train"}
