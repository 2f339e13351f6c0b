"""messages.internaldate_offset: the zone INTERNALDATE was given in"""

from __future__ import annotations

import sqlalchemy as sa

from lightmail.storage.db.migrations.columns import added_column

revision = "0006"
down_revision = "0005"

# Minutes east of UTC. Rows stored before kept only the UTC instant: offset 0
# renders them exactly as before ("... +0000").
upgrade, downgrade = added_column("messages", "internaldate_offset", sa.Integer())
