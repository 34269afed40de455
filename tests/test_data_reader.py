"""DataReader (read_batch) and make_dataset (tf.data) over small batch files."""

import os

import numpy as np
import pytest

from text_objseg_tf2.util import data_reader

NUM_BATCH = 7


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("batches")
    for n in range(NUM_BATCH):
        np.savez(path / f"pre_{n}.npz",
                 text_seq_batch=np.full((4, 2), n, np.int32),
                 imcrop_batch=np.full((2, 8, 8, 3), n, np.uint8),
                 label_batch=np.array([[n % 2 == 0], [True]]))
    np.savez(path / f"pre_{NUM_BATCH + 1}.npz", text_seq_batch=np.zeros(1))  # after a gap
    np.savez(path / "other_0.npz", text_seq_batch=np.zeros(1))
    return str(path)


def ids(reader, count):
    return [int(reader.read_batch()["text_seq_batch"][0, 0]) for _ in range(count)]


def test_no_shuffle_reads_in_order_with_counters(folder):
    with data_reader.DataReader(folder, "pre", shuffle=False, prefetch_num=3) as reader:
        assert reader.num_batch == NUM_BATCH  # consecutive files only, as the original
        batch = reader.read_batch()
        assert sorted(batch) == ["imcrop_batch", "label_batch", "text_seq_batch"]
        assert batch["imcrop_batch"].dtype == np.uint8 and batch["label_batch"].dtype == bool
        assert (reader.n_epoch, reader.n_batch) == (0, 1)
        assert ids(reader, 2 * NUM_BATCH - 1) == list(range(1, NUM_BATCH)) + list(range(NUM_BATCH))
        assert (reader.n_epoch, reader.n_batch) == (2, 0)


def test_shuffle_is_a_new_permutation_every_epoch(folder):
    with data_reader.DataReader(folder, "pre", shuffle=True, seed=11) as reader:
        epochs = [ids(reader, NUM_BATCH) for _ in range(4)]
    for order in epochs:
        assert sorted(order) == list(range(NUM_BATCH))
    assert len({tuple(order) for order in epochs}) > 1
    assert epochs[2] == list(data_reader.epoch_order(NUM_BATCH, 2, True, 11))
    with data_reader.DataReader(folder, "pre", shuffle=True, seed=11) as again:
        assert ids(again, 2 * NUM_BATCH) == epochs[0] + epochs[1]


def test_state_restore_resumes_exactly(folder):
    reader = data_reader.DataReader(folder, "pre", shuffle=True)  # random seed, recorded
    first = ids(reader, 10)
    state = reader.state()
    expected = ids(reader, 12)
    reader.close()
    assert state["epoch"] == 1 and state["position"] == 10 - NUM_BATCH
    assert data_reader.state_after(reader.state(), 0) == reader.state()
    assert data_reader.state_after(state, 12) == reader.state()
    with data_reader.DataReader(folder, "pre", start_state=state) as resumed:
        assert ids(resumed, 12) == expected
        assert resumed.state() == reader.state()
    assert len(first) == 10
    with pytest.raises(ValueError, match="seed"):
        data_reader.DataReader(folder, "pre", seed=state["seed"] + 1, start_state=state)
    with pytest.raises(ValueError, match="batches"):
        data_reader.DataReader(folder, "pre", start_state=dict(state, num_batch=3))


def test_no_batches_is_a_clear_error(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match='no batches under .* with prefix "nope"'):
        data_reader.DataReader(folder, "nope")
    with pytest.raises(RuntimeError):  # what the original raised
        data_reader.DataReader(folder, "nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data_reader.DataReader(str(tmp_path / "missing"), "pre")


def test_corrupt_batch_raises_in_read_batch(tmp_path):
    np.savez(tmp_path / "b_0.npz", x=np.zeros(3))
    (tmp_path / "b_1.npz").write_bytes(b"PK\x03\x04 not a zip")
    with data_reader.DataReader(str(tmp_path), "b", shuffle=False) as reader:
        reader.read_batch()
        with pytest.raises(ValueError, match="b_1.npz"):
            reader.read_batch()


def test_dataset_yields_the_reader_batches(folder):
    import tensorflow as tf

    ds = data_reader.make_dataset(folder, "pre", shuffle=True, seed=5)
    assert ds.element_spec["imcrop_batch"].shape == (2, 8, 8, 3)
    assert ds.element_spec["label_batch"].dtype == tf.bool
    got = list(ds.take(2 * NUM_BATCH + 3).as_numpy_iterator())
    with data_reader.DataReader(folder, "pre", shuffle=True, seed=5) as reader:
        want = [reader.read_batch() for _ in range(2 * NUM_BATCH + 3)]
        state = reader.state()
    for g, w in zip(got, want, strict=True):
        for key in w:
            assert g[key].dtype == w[key].dtype
            np.testing.assert_array_equal(g[key], w[key])
    # Resume from a state, and a finite dataset of one epoch.
    resumed = data_reader.make_dataset(folder, "pre", start_state=state, num_epochs=1)
    rest = [int(b["text_seq_batch"][0, 0]) for b in resumed.as_numpy_iterator()]
    order = list(data_reader.epoch_order(NUM_BATCH, 2, True, 5))
    assert rest == order[3:]
    ordered = data_reader.make_dataset(folder, "pre", shuffle=False, num_epochs=2)
    assert [int(b["text_seq_batch"][0, 0]) for b in ordered.as_numpy_iterator()] == \
        list(range(NUM_BATCH)) * 2


def test_initial_state(folder):
    state = data_reader.initial_state(folder, "pre", seed=3)
    with data_reader.DataReader(folder, "pre", seed=3) as reader:
        assert reader.state() == state
    assert os.path.isdir(folder)
