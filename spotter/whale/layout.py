"""File and column names of the Happywhale data layout, shared by the reader and the generator."""

TRAIN_CSV = "train.csv"
TEST_CSV = "sample_submission.csv"
BBOX_CSV = "bboxes.csv"
TEST_LABELS_CSV = "test_labels.csv"
TRAIN_DIR = "train_images"
TEST_DIR = "test_images"
TRAIN_COLUMNS = ["image", "species", "individual_id"]
TEST_COLUMNS = ["image", "predictions"]
BBOX_COLUMNS = ["image", "x1", "y1", "x2", "y2"]
