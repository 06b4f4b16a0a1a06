"""Which schema entries wait until after the logical copy: a `pg_restore -l` listing recorded
from the app's schema (trimmed), split by the source's indexes."""

from __future__ import annotations

import pytest

from freehold.deploy.migrate.dbschema import SourceIndex, parse_toc, split

pytestmark = pytest.mark.unit

LISTING = """;
; Archive created at 2026-12-07 09:31:02 UTC
218; 1259 16418 TABLE public accounts freehold
3316; 0 0 TABLE ATTACH public posts_2026_12 freehold
3419; 2606 16435 CONSTRAINT public accounts accounts_pkey freehold
3515; 2606 17033 CONSTRAINT public oauth_apps oauth_apps_client_id_key freehold
3453; 2606 16609 CONSTRAINT public posts_2026_12 posts_2026_12_pkey freehold
3420; 1259 16436 INDEX public accounts_username_key freehold
3432; 1259 16529 INDEX public posts_author freehold
3450; 1259 16610 INDEX public posts_2026_12_author_id_id_idx freehold
3538; 0 0 INDEX ATTACH public posts_2026_12_author_id_id_idx freehold
3540; 0 0 INDEX ATTACH public posts_2026_12_pkey freehold
3600; 0 0 COMMENT public INDEX posts_author freehold
3601; 0 0 COMMENT public TABLE accounts freehold
3568; 2606 16744 FK CONSTRAINT public post_tags post_tags_post_id_fkey freehold
3577; 1259 17099 INDEX public my index freehold
"""

INDEXES = {
    16435: SourceIndex("public", "accounts_pkey", "accounts", "accounts_pkey", True),
    16609: SourceIndex("public", "posts_2026_12_pkey", "posts_2026_12", "posts_2026_12_pkey",
                       True),
    17031: SourceIndex("public", "oauth_apps_client_id_key", "oauth_apps",
                       "oauth_apps_client_id_key", False),
    16436: SourceIndex("public", "accounts_username_key", "accounts", None, False),
    16529: SourceIndex("public", "posts_author", "posts", None, False),
    16610: SourceIndex("public", "posts_2026_12_author_id_id_idx", "posts_2026_12", None, False),
    17099: SourceIndex("public", "my index", "accounts", None, True),  # replica identity
}
CONSTRAINT_INDEX = {16435: 16435, 17033: 17031, 16609: 16609, 16744: 16513}


def test_toc_lines_parse_with_multi_word_kinds_and_names() -> None:
    entries = parse_toc(LISTING)
    assert len(entries) == 14  # comment lines skipped
    attach = entries[8]
    assert (attach.desc, attach.schema, attach.name, attach.oid) == (
        "INDEX ATTACH", "public", "posts_2026_12_author_id_id_idx", 0)
    assert (entries[-2].desc, entries[-2].name) == ("FK CONSTRAINT",
                                                    "post_tags post_tags_post_id_fkey")
    assert (entries[-1].desc, entries[-1].name) == ("INDEX", "my index")
    assert entries[10].desc == "COMMENT" and entries[10].name == "INDEX posts_author"


def test_keys_the_copy_needs_stay_the_rest_waits() -> None:
    now, later = split(parse_toc(LISTING), INDEXES, CONSTRAINT_INDEX)
    waiting = [(e.desc, e.name) for e, _ in later]
    assert waiting == [
        ("CONSTRAINT", "oauth_apps oauth_apps_client_id_key"),  # unique, no FK refers to it
        ("INDEX", "accounts_username_key"), ("INDEX", "posts_author"),
        ("INDEX", "posts_2026_12_author_id_id_idx"),
        ("INDEX ATTACH", "posts_2026_12_author_id_id_idx"),
        ("COMMENT", "INDEX posts_author")]  # a comment waits for its index
    kept = {e.name for e in now}
    assert {"accounts", "accounts accounts_pkey", "posts_2026_12 posts_2026_12_pkey",
            "posts_2026_12_pkey", "post_tags post_tags_post_id_fkey", "my index",
            "TABLE accounts"} <= kept
    assert len(now) + len(later) == 14
