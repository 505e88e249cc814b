//! Bounded excerpts of what a guest controls. A guest may print a line of megabytes, serve
//! a hostname of megabytes or list a million files; every fact a view shows keeps at most
//! [`EXCERPT_CHARS`] characters of one such string and [`EXCERPT_ITEMS`] items of one such
//! list, and says how much it cut and where the whole is.

/// The most characters kept of one guest-controlled string.
pub const EXCERPT_CHARS: usize = 300;

/// The most items kept of one guest-controlled list.
pub const EXCERPT_ITEMS: usize = 1000;

/// The most characters of one check's evidence, which joins a few excerpts.
pub const EVIDENCE_CHARS: usize = 2000;

/// `text`, or its first [`EXCERPT_CHARS`] characters and a note of how many more there
/// were and where the whole is (`whole`: an artifact and line, say), or that it was not
/// kept (None).
pub fn excerpt(text: &str, whole: Option<&str>) -> String {
    cut(text, EXCERPT_CHARS, whole)
}

/// `text`, or its first `chars` characters and the note of [`excerpt`].
pub fn cut(text: &str, chars: usize, whole: Option<&str>) -> String {
    match text.char_indices().nth(chars) {
        None => text.to_string(),
        Some((at, _)) => {
            let more = text[at..].chars().count();
            let whole = whole.unwrap_or("not kept");
            format!(
                "{}[... {more} more characters; whole: {whole}]",
                &text[..at]
            )
        }
    }
}

/// The most characters kept of a guest-controlled path or key, which the checks compare
/// whole with what the image holds (a path is at most `PATH_MAX`, 4096 bytes; an
/// OpenSSH RSA key of 16384 bits is under 3000 characters).
pub const VALUE_CHARS: usize = 16 << 10;

/// Bounds `text` in place ([`excerpt`], the whole not kept).
pub fn bound(text: &mut String) {
    if text.len() > EXCERPT_CHARS {
        *text = cut(text, EXCERPT_CHARS, None);
    }
}

/// Bounds a path or key in place at [`VALUE_CHARS`].
pub fn bound_value(text: &mut String) {
    if text.len() > VALUE_CHARS {
        *text = cut(text, VALUE_CHARS, None);
    }
}

/// Bounds a list in place: at most [`EXCERPT_ITEMS`] items, each bounded by `each`; a
/// last item says how many more there were, when `note` can make one.
pub fn bound_list<T>(
    items: &mut Vec<T>,
    mut each: impl FnMut(&mut T),
    note: fn(usize) -> Option<T>,
) {
    if items.len() > EXCERPT_ITEMS {
        let more = items.len() - EXCERPT_ITEMS;
        items.truncate(EXCERPT_ITEMS);
        items.extend(note(more));
    }
    items.iter_mut().for_each(&mut each);
}

/// The note [`bound_list`] ends a list of strings with.
pub fn more_strings(more: usize) -> Option<String> {
    Some(format!("[... {more} more, not kept]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(excerpt("login:", Some("boot0-console.log")), "login:");
        let exact = "é".repeat(EXCERPT_CHARS);
        assert_eq!(excerpt(&exact, None), exact);
    }

    #[test]
    fn long_text_is_cut_at_a_character_and_says_how_much_and_where() {
        let long = format!("Kernel panic {}", "ü".repeat(200_000));
        let e = excerpt(&long, Some("boot0-console.log line 7"));
        assert!(e.starts_with("Kernel panic ü"), "{e}");
        let more = long.chars().count() - EXCERPT_CHARS;
        assert!(
            e.ends_with(&format!(
                "[... {more} more characters; whole: boot0-console.log line 7]"
            )),
            "{e}"
        );
        assert!(e.chars().count() < EXCERPT_CHARS + 80, "{}", e.len());
        let mut s = long.clone();
        bound(&mut s);
        assert!(s.ends_with("whole: not kept]"), "{s}");
    }

    #[test]
    fn long_lists_keep_their_first_items_and_count_the_rest() {
        let mut v: Vec<String> = (0..EXCERPT_ITEMS + 5).map(|i| "x".repeat(i)).collect();
        bound_list(&mut v, bound, more_strings);
        assert_eq!(v.len(), EXCERPT_ITEMS + 1);
        assert_eq!(v[EXCERPT_ITEMS], "[... 5 more, not kept]");
        assert!(v.iter().all(|s| s.chars().count() < EXCERPT_CHARS + 80));
        let mut short = vec!["a".to_string()];
        bound_list(&mut short, bound, more_strings);
        assert_eq!(short, ["a"]);
    }
}
