//! Compiling a Java `DateTimeFormatter` pattern (`yyyy-MM-dd'T'HH:mm:ss.SSSXXX`).
//!
//! Letter counts mean what they mean in `DateTimeFormatterBuilder.appendPattern`:
//! one letter is a variable-width number (here 1 or 2 digits, enough for every
//! field it applies to), two letters exactly two digits, `MMM` and `MMMM`
//! month names, `S..S` exactly that many fraction digits, `n..n` nano-of-second
//! as an integer of at least that many digits. Letters outside SPEC section 3's
//! list are rejected when the job is validated, not discovered row by row.
//!
//! Deliberate leniencies, because they cannot change a valid value's meaning:
//! month names and AM/PM ignore case. Everything else is as strict as java.time.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::pattern::{CompiledPattern, Token};
use super::scan::{Colon, OffsetSyntax};

/// Optional sections nest; the matcher recurses into them, so bound the depth.
const MAX_OPTIONAL_DEPTH: usize = 8;

const SUPPORTED: &str = "y M d H h m s S n a Z X x VV";

pub(crate) fn compile(pattern: &str) -> Result<CompiledPattern, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut stack: Vec<Vec<Token>> = alloc::vec![Vec::new()];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() {
            let mut count = 1;
            while i + count < chars.len() && chars[i + count] == c {
                count += 1;
            }
            let token = letter(c, count, i)?;
            push(&mut stack, token);
            i += count;
        } else if c == '\'' {
            let (text, next) = quoted(&chars, i)?;
            push_literal(&mut stack, &text);
            i = next;
        } else if c == '[' {
            if stack.len() > MAX_OPTIONAL_DEPTH {
                return Err(format!(
                    "optional sections nest deeper than {MAX_OPTIONAL_DEPTH} at position {}",
                    i + 1
                ));
            }
            stack.push(Vec::new());
            i += 1;
        } else if c == ']' {
            if stack.len() < 2 {
                return Err(format!("']' at position {} closes no optional section '['", i + 1));
            }
            let inner = stack.pop().unwrap_or_default();
            push(&mut stack, Token::Optional(inner));
            i += 1;
        } else if matches!(c, '#' | '{' | '}') {
            // java.time reserves these for future use and rejects them.
            return Err(format!(
                "'{c}' at position {} is reserved in Java patterns; quote it as '{c}' to match it literally",
                i + 1
            ));
        } else {
            let mut buf = [0u8; 4];
            push_literal(&mut stack, c.encode_utf8(&mut buf));
            i += 1;
        }
    }
    if stack.len() != 1 {
        return Err(String::from("an optional section '[' is never closed with ']'"));
    }
    let mut tokens = stack.pop().unwrap_or_default();
    fix_adjacent_widths(&mut tokens);
    check_complete(&tokens)?;
    Ok(CompiledPattern { tokens })
}

fn push(stack: &mut [Vec<Token>], token: Token) {
    if let Some(top) = stack.last_mut() {
        top.push(token);
    }
}

/// Appends text, merged with a literal just before it so a row compares one
/// run of bytes instead of one per character.
fn push_literal(stack: &mut [Vec<Token>], text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(top) = stack.last_mut() {
        if let Some(Token::Literal(previous)) = top.last_mut() {
            previous.push_str(text);
        } else {
            top.push(Token::Literal(String::from(text)));
        }
    }
}

/// Reads `'...'` starting at `start` (the opening quote). `''` is one quote,
/// inside or outside a quoted run. Returns the text and the index after it.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    if chars.get(start + 1) == Some(&'\'') {
        return Ok((String::from("'"), start + 2));
    }
    let mut text = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => {
                return Err(format!(
                    "the quote at position {} is never closed; write '' for a literal quote",
                    start + 1
                ))
            }
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                text.push('\'');
                i += 2;
            }
            Some('\'') => return Ok((text, i + 1)),
            Some(&c) => {
                text.push(c);
                i += 1;
            }
        }
    }
}

fn letter(c: char, count: usize, index: usize) -> Result<Token, String> {
    let position = index + 1;
    let too_many = || {
        Err(format!(
            "too many pattern letters '{c}' ({count}) at position {position}"
        ))
    };
    // One letter reads 1-2 digits, two letters exactly 2 (java.time widths).
    let small = |count: usize| if count == 1 { (1, 2) } else { (2, 2) };
    let token = match c {
        'y' => match count {
            2 => Token::YearTwoDigit { pivot: 2000 },
            1..=9 => Token::Year { min: count as u8, max: 9 },
            _ => return too_many(),
        },
        'M' => match count {
            1 | 2 => {
                let (min, max) = small(count);
                Token::Month { min, max }
            }
            3 => Token::MonthName { full: false },
            4 => Token::MonthName { full: true },
            5 => {
                return Err(format!(
                    "'MMMMM' (narrow month name) at position {position} is not supported; use M, MM, MMM or MMMM"
                ))
            }
            _ => return too_many(),
        },
        'd' | 'H' | 'h' | 'm' | 's' => {
            if count > 2 {
                return too_many();
            }
            let (min, max) = small(count);
            match c {
                'd' => Token::Day { min, max },
                'H' => Token::Hour { min, max },
                'h' => Token::ClockHour { min, max },
                'm' => Token::Minute { min, max },
                _ => Token::Second { min, max },
            }
        }
        'S' => match count {
            1..=9 => Token::Fraction { min: count as u8, max: count as u8 },
            _ => return too_many(),
        },
        // java.time reads up to 19 digits; the value must still be < 10^9.
        'n' => match count {
            1..=9 => Token::Nano { min: count as u8, max: 18 },
            _ => return too_many(),
        },
        'a' => match count {
            1 => Token::AmPm,
            _ => return too_many(),
        },
        'Z' => match count {
            1..=3 => Token::Offset(offset(Colon::Forbidden, false, false, false)),
            4 => Token::LocalizedOffset,
            5 => Token::Offset(offset(Colon::Required, false, true, true)),
            _ => return too_many(),
        },
        'X' | 'x' => {
            let zulu = c == 'X';
            match count {
                1 => Token::Offset(offset(Colon::Forbidden, true, false, zulu)),
                2 => Token::Offset(offset(Colon::Forbidden, false, false, zulu)),
                3 => Token::Offset(offset(Colon::Required, false, false, zulu)),
                4 => Token::Offset(offset(Colon::Forbidden, false, true, zulu)),
                5 => Token::Offset(offset(Colon::Required, false, true, zulu)),
                _ => return too_many(),
            }
        }
        'V' => match count {
            2 => Token::ZoneId,
            _ => {
                return Err(format!(
                    "zone id letters at position {position} must be exactly 'VV', not {count} 'V'"
                ))
            }
        },
        _ => {
            return Err(format!(
                "pattern letter '{c}' at position {position} is not supported \
                 (supported: {SUPPORTED}); quote literal text, e.g. 'T'"
            ))
        }
    };
    Ok(token)
}

fn offset(colon: Colon, minutes_optional: bool, seconds_allowed: bool, zulu: bool) -> OffsetSyntax {
    OffsetSyntax { colon, minutes_optional, seconds_allowed, zulu }
}

/// A year written with a variable width must leave the digits of a field
/// right after it alone: in `yyyyMMdd` the year is exactly four digits.
/// java.time calls this adjacent value parsing.
fn fix_adjacent_widths(tokens: &mut [Token]) {
    for i in 0..tokens.len() {
        let next_is_digit = tokens.get(i + 1).is_some_and(Token::starts_with_digit);
        if let Some(Token::Year { min, max }) = tokens.get_mut(i) {
            if next_is_digit {
                *max = (*min).max(4);
            }
        }
        if let Some(Token::Optional(inner)) = tokens.get_mut(i) {
            fix_adjacent_widths(inner);
        }
    }
}

/// A pattern that can never name a day is a mistake in the job file; say so
/// when the job is validated rather than failing every row.
fn check_complete(tokens: &[Token]) -> Result<(), String> {
    let mut seen = Seen::default();
    seen.visit(tokens);
    if !seen.year {
        return Err(String::from("the pattern has no year ('yyyy' or 'yy')"));
    }
    if !seen.month {
        return Err(String::from("the pattern has no month ('M', 'MM', 'MMM' or 'MMMM')"));
    }
    if !seen.day {
        return Err(String::from("the pattern has no day of month ('d' or 'dd')"));
    }
    if seen.clock_hour && !seen.am_pm {
        return Err(String::from(
            "'h' is the 1-12 clock hour and needs 'a' (AM/PM); use 'H' for 0-23",
        ));
    }
    Ok(())
}

#[derive(Default)]
struct Seen {
    year: bool,
    month: bool,
    day: bool,
    clock_hour: bool,
    am_pm: bool,
}

impl Seen {
    fn visit(&mut self, tokens: &[Token]) {
        for token in tokens {
            match token {
                Token::Year { .. } | Token::YearTwoDigit { .. } => self.year = true,
                Token::Month { .. } | Token::MonthName { .. } => self.month = true,
                Token::Day { .. } => self.day = true,
                Token::ClockHour { .. } => self.clock_hour = true,
                Token::AmPm => self.am_pm = true,
                Token::Optional(inner) => self.visit(inner),
                _ => {}
            }
        }
    }
}
