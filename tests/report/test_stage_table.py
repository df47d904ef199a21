"""The warm-up's stage table shows warm / cold columns exactly when the runs have a cold-item split."""
from cva_rec.report.stages import stage_table


def _stage(name, cold=None):
    test = {"hr@10": 0.2, "ndcg@10": 0.1, "hr@20": 0.3, "ndcg@20": 0.12}
    if cold is not None:
        test["warm"] = {"ndcg@10": 0.11}
        test["cold"] = {"ndcg@10": cold, "hr@20": 2 * cold}
    return {"stage": name, "test": test, "parameters": 10, "epochs_trained": 1}


def test_cold_split_adds_warm_and_cold_columns_with_their_values():
    lines = stage_table([_stage("id", 0.0), _stage("room", 0.0175)]).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[-5:] == ["warm ndcg@10", "cold ndcg@10", "cold hr@20", "parameters", "epochs"]
    room = [c.strip() for c in lines[3].strip("|").split("|")]
    assert room[header.index("cold ndcg@10")] == "0.0175" and room[header.index("cold hr@20")] == "0.0350"


def test_no_cold_split_no_cold_columns():
    assert "cold" not in stage_table([_stage("id")])
