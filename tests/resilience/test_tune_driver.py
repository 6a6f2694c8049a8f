"""The Tune driver killed mid-campaign (SIGKILL: no signal handler runs, nothing is saved
on the way out). Running the same command again resumes the campaign from Tune's last
saved state: trials that finished are not trained again, the rest complete. The campaign
itself is the session's `campaign` fixture (tests/conftest.py), shared with the tune
tests."""

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration


def test_a_killed_campaign_driver_resumes_without_rerunning_finished_trials(campaign):
    _, artifact, stamps, output = campaign
    assert "resuming campaign" in output
    assert stamps, "at least one trial had finished before the interruption"
    rows = pq.read_table(artifact.file("results.parquet")).to_pylist()
    assert len(rows) == 4, "the grid's four trials, none twice"
    # Finished trials were not trained again: their artifacts (moved into the campaign
    # artifact, files untouched) are the ones written before the interruption.
    for trial_id, stamp in stamps.items():
        kept = artifact.path / "trials" / trial_id / "train" / "manifest.json"
        assert kept.stat().st_mtime_ns == stamp
    print(
        f"\n[resilience] tune driver killed after {len(stamps)} finished trial(s); resumed, 4 trials, none twice"
    )
