"""What stage results share: the marker of fields that are for the asset, not a reported column."""

# dataclass field metadata: a local file in the stage's work dir or a nested inspection the asset maps
# itself; `defs/assets/common.table` leaves such fields out of the metadata table.
NOT_A_COLUMN = {"table_column": False}
