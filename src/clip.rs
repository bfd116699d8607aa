//! Network-supplied text, cut short for the log.
//!
//! Ids, type names and messages come from apps and callers, and nothing
//! bounds them but the message size limit: logged whole, one hostile reply
//! would write megabytes (and `{:?}` writes each control byte as several
//! characters). So whatever came from the network is logged through
//! [`Clipped`]: a short escaped prefix, and the full length when it was cut.

use std::fmt;

/// Characters of a clipped text that are logged.
pub const CLIP_CHARS: usize = 64;

/// Displays a network-supplied string quoted and escaped, cut to its first
/// [`CLIP_CHARS`] characters, with its length in bytes when cut. The output
/// is bounded whatever the input: at most ~10 bytes per character kept.
#[derive(Clone, Copy)]
pub struct Clipped<'a>(pub &'a str);

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        let mut chars = text.char_indices();
        let cut = chars.nth(CLIP_CHARS).map(|(at, _)| at);
        let kept = &text[..cut.unwrap_or(text.len())];
        write!(f, "\"{}\"", kept.escape_debug())?;
        if cut.is_some() {
            write!(f, "... ({} bytes)", text.len())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Displays a list of network-supplied names: their count and the first few,
/// each clipped.
pub struct ClippedList<'a>(pub &'a [String]);

/// Names of a list that are logged.
const LIST_NAMES: usize = 5;

impl fmt::Display for ClippedList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.0;
        write!(f, "{} [", names.len())?;
        for (i, name) in names.iter().take(LIST_NAMES).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", Clipped(name))?;
        }
        if names.len() > LIST_NAMES {
            write!(f, ", ... {} more", names.len() - LIST_NAMES)?;
        }
        f.write_str("]")
    }
}

/// `text` if it fits in `max` bytes; else cut at a character boundary and
/// ended with `marker`, `max` bytes at most in all.
pub fn cut_to(mut text: String, max: usize, marker: &str) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub(marker.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(marker);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_quoted_and_escaped_whole() {
        assert_eq!(Clipped("a\u{1}b").to_string(), "\"a\\u{1}b\"");
    }

    #[test]
    fn long_text_keeps_a_prefix_and_says_its_length() {
        let huge = "\u{1}".repeat(1 << 20);
        let shown = Clipped(&huge).to_string();
        assert!(shown.len() < 600, "{} bytes logged", shown.len());
        assert!(shown.ends_with("... (1048576 bytes)"), "{shown}");
    }

    #[test]
    fn cuts_at_a_character_boundary() {
        let text = "é".repeat(100);
        let shown = Clipped(&text).to_string();
        assert_eq!(
            shown,
            format!("\"{}\"... (200 bytes)", "é".repeat(CLIP_CHARS))
        );
    }

    #[test]
    fn a_list_shows_its_count_and_the_first_names() {
        let names: Vec<String> = (0..8).map(|i| format!("T{i}")).collect();
        assert_eq!(
            ClippedList(&names).to_string(),
            "8 [\"T0\", \"T1\", \"T2\", \"T3\", \"T4\", ... 3 more]"
        );
        assert_eq!(ClippedList(&names[..1]).to_string(), "1 [\"T0\"]");
    }
}
