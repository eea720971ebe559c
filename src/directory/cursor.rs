//! Page cursors: the last row of recent listing pages, so that the next
//! page can start after it instead of skipping rows with `OFFSET`.
//!
//! SCIM pages by `startIndex`, and an Okta import reads every page in turn.
//! With `OFFSET` each page costs as much as all the pages before it, so a
//! 100,000-user import reads about 50 million rows. A page that starts
//! where a remembered page ended reads only its own rows through the `seq`
//! index.
//!
//! The continuation differs from `OFFSET` only when rows before it were
//! deleted in between: `OFFSET` then skips rows the client never saw, and
//! the continuation does not. RFC 7644 section 3.4.2.4 lets a service
//! provider page without consistency between requests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::document::Condition;
use super::ResourceKind;

/// Pages remembered at most; older ones are dropped when this is reached.
const MAX_CURSORS: usize = 1_024;

/// How long a remembered page end is used. A client pages through a
/// listing within seconds, and a later request with the same `startIndex`
/// should see deletions made since.
const CURSOR_LIFETIME: Duration = Duration::from_secs(60);

/// The first row of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageStart {
    /// After this many matches, in `seq` order.
    Offset(i64),
    /// At the first match whose `seq` is greater than this.
    AfterSeq(i64),
}

/// A listing and the position at which one of its pages ends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CursorKey {
    kind: ResourceKind,
    condition: Condition,
    end: i64,
}

/// The `seq` of the last row of recent pages, keyed by the position at
/// which they ended.
#[derive(Debug, Default)]
pub(crate) struct PageCursors {
    ends: Mutex<HashMap<CursorKey, (i64, Instant)>>,
}

impl PageCursors {
    /// Returns where the page at `offset` of the listing starts: after the
    /// last row of a remembered page that ended there, or at `offset`.
    pub(crate) fn start(
        &self,
        kind: ResourceKind,
        condition: &Condition,
        offset: i64,
    ) -> PageStart {
        if offset == 0 {
            return PageStart::Offset(0);
        }
        let key = CursorKey {
            kind,
            condition: condition.clone(),
            end: offset,
        };
        let ends = self
            .ends
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match ends.get(&key) {
            Some((seq, saved)) if saved.elapsed() < CURSOR_LIFETIME => PageStart::AfterSeq(*seq),
            _ => PageStart::Offset(offset),
        }
    }

    /// Remembers that the page of the listing ending before match `end`
    /// (counted from 0) has `last_seq` as its last row.
    pub(crate) fn remember(
        &self,
        kind: ResourceKind,
        condition: &Condition,
        end: i64,
        last_seq: i64,
    ) {
        let mut ends = self
            .ends
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if ends.len() >= MAX_CURSORS {
            ends.retain(|_, (_, saved)| saved.elapsed() < CURSOR_LIFETIME);
            if ends.len() >= MAX_CURSORS {
                ends.clear();
            }
        }
        let key = CursorKey {
            kind,
            condition: condition.clone(),
            end,
        };
        ends.insert(key, (last_seq, Instant::now()));
    }
}

/// Returns the `WHERE` condition and `LIMIT`/`OFFSET` of a page, to follow
/// `where_clause` (empty or starting with ` WHERE`). The limit is
/// parameter `$next` and the start `$next + 1`.
pub(crate) fn page_bounds(where_clause: &str, start: PageStart, next: usize) -> String {
    let limit = format!("${next}");
    let position = format!("${}", next + 1);
    match start {
        PageStart::Offset(_) => {
            format!("{where_clause} ORDER BY seq LIMIT {limit} OFFSET {position}")
        }
        PageStart::AfterSeq(_) if where_clause.is_empty() => {
            format!(" WHERE seq > {position} ORDER BY seq LIMIT {limit}")
        }
        PageStart::AfterSeq(_) => {
            format!("{where_clause} AND seq > {position} ORDER BY seq LIMIT {limit}")
        }
    }
}

impl PageStart {
    /// Returns the value bound to the start parameter.
    pub(crate) fn value(self) -> i64 {
        match self {
            PageStart::Offset(offset) => offset,
            PageStart::AfterSeq(seq) => seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::document::IndexedColumn;

    #[test]
    fn first_page_uses_offset() {
        let cursors = PageCursors::default();
        cursors.remember(ResourceKind::User, &Condition::All, 0, 7);
        assert_eq!(
            cursors.start(ResourceKind::User, &Condition::All, 0),
            PageStart::Offset(0)
        );
    }

    #[test]
    fn next_page_continues_after_last_row() {
        let cursors = PageCursors::default();
        cursors.remember(ResourceKind::User, &Condition::All, 100, 4_321);
        assert_eq!(
            cursors.start(ResourceKind::User, &Condition::All, 100),
            PageStart::AfterSeq(4_321)
        );
        assert_eq!(
            cursors.start(ResourceKind::User, &Condition::All, 200),
            PageStart::Offset(200)
        );
    }

    #[test]
    fn cursor_belongs_to_its_listing() {
        let cursors = PageCursors::default();
        cursors.remember(ResourceKind::User, &Condition::All, 100, 4_321);
        let filtered = Condition::Equals(IndexedColumn::DisplayNameKey, "ops".to_owned());
        assert_eq!(
            cursors.start(ResourceKind::User, &filtered, 100),
            PageStart::Offset(100)
        );
        assert_eq!(
            cursors.start(ResourceKind::Group, &Condition::All, 100),
            PageStart::Offset(100)
        );
    }

    #[test]
    fn full_cursor_list_starts_over() {
        let cursors = PageCursors::default();
        for end in 1..=i64::try_from(MAX_CURSORS).expect("small") + 1 {
            cursors.remember(ResourceKind::User, &Condition::All, end, end);
        }
        let ends = cursors.ends.lock().expect("not poisoned");
        assert_eq!(ends.len(), 1);
    }

    #[test]
    fn page_bounds_per_start() {
        assert_eq!(
            page_bounds("", PageStart::Offset(5), 1),
            " ORDER BY seq LIMIT $1 OFFSET $2"
        );
        assert_eq!(
            page_bounds("", PageStart::AfterSeq(5), 1),
            " WHERE seq > $2 ORDER BY seq LIMIT $1"
        );
        assert_eq!(
            page_bounds(" WHERE external_id = $1", PageStart::AfterSeq(5), 2),
            " WHERE external_id = $1 AND seq > $3 ORDER BY seq LIMIT $2"
        );
    }
}
