//! Compiling a strftime pattern (`%Y-%m-%d %H:%M:%S`), read the way glibc's
//! `strptime` reads it: numbers need not be zero-padded, `%b` and `%B` both
//! take either month form, and whitespace in the pattern matches any run of
//! whitespace (also none).
//!
//! We do not hand this to `chrono::format::parse`: its `Parsed` has no notion
//! of a default zone with java.time's gap and fold rules, and compiling to our
//! own tokens lets one matcher and one resolver serve Java and strftime alike.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::pattern::{CompiledPattern, Token};
use super::scan::{Colon, OffsetSyntax};

const SUPPORTED: &str = "%Y %y %m %d %e %j %H %I %M %S %f %.f %p %b %B %h %a %A \
                         %z %:z %Z %s %T %F %R %D %n %t %%";

/// `%z` as glibc reads it: `+hh`, `+hhmm`, `+hh:mm` or `Z`.
const PERCENT_Z: OffsetSyntax = OffsetSyntax {
    colon: Colon::Either,
    minutes_optional: true,
    seconds_allowed: false,
    zulu: true,
};

pub(crate) fn compile(pattern: &str) -> Result<CompiledPattern, String> {
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut chars = pattern.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        if c.is_whitespace() {
            // One token for a run of pattern whitespace.
            flush(&mut tokens, &mut literal);
            if tokens.last() != Some(&Token::Whitespace) {
                tokens.push(Token::Whitespace);
            }
            continue;
        }
        if c != '%' {
            literal.push(c);
            continue;
        }
        let Some((_, spec)) = chars.next() else {
            return Err(format!(
                "the pattern ends with a lone '%' at position {}; write %% for a literal percent sign",
                index + 1
            ));
        };
        let mut spec_text = String::from(spec);
        if spec == ':' || spec == '.' {
            // Two-character specifiers `%:z` and `%.f` (also `%.3f`, `%.6f`, `%.9f`).
            let mut rest = String::new();
            while let Some(&(_, next)) = chars.peek() {
                rest.push(next);
                chars.next();
                if !next.is_ascii_digit() {
                    break;
                }
            }
            spec_text.push_str(&rest);
        }
        if spec == '%' {
            literal.push('%');
            continue;
        }
        flush(&mut tokens, &mut literal);
        expand(&spec_text, index, &mut tokens)?;
    }
    flush(&mut tokens, &mut literal);
    check_complete(&tokens)?;
    Ok(CompiledPattern { tokens })
}

fn flush(tokens: &mut Vec<Token>, literal: &mut String) {
    if !literal.is_empty() {
        tokens.push(Token::Literal(core::mem::take(literal)));
    }
}

fn expand(spec: &str, index: usize, tokens: &mut Vec<Token>) -> Result<(), String> {
    let two = |token: fn(u8, u8) -> Token| token(1, 2);
    match spec {
        "Y" => tokens.push(Token::Year { min: 1, max: 4 }),
        // POSIX: 69-99 are 1969-1999, 00-68 are 2000-2068.
        "y" => tokens.push(Token::YearTwoDigit { pivot: 1969 }),
        "m" => tokens.push(two(|min, max| Token::Month { min, max })),
        "d" => tokens.push(two(|min, max| Token::Day { min, max })),
        "e" => tokens.push(Token::DaySpacePadded),
        "j" => tokens.push(Token::DayOfYear { min: 1, max: 3 }),
        "H" => tokens.push(two(|min, max| Token::Hour { min, max })),
        "I" => tokens.push(two(|min, max| Token::ClockHour { min, max })),
        "M" => tokens.push(two(|min, max| Token::Minute { min, max })),
        "S" => tokens.push(two(|min, max| Token::Second { min, max })),
        "f" => tokens.push(Token::Fraction { min: 1, max: u8::MAX }),
        ".f" | ".3f" | ".6f" | ".9f" => tokens.push(Token::DotFraction),
        "p" => tokens.push(Token::AmPm),
        "b" | "B" | "h" => tokens.push(Token::MonthNameAny),
        "a" | "A" => tokens.push(Token::WeekdayName),
        "z" => tokens.push(Token::Offset(PERCENT_Z)),
        ":z" => tokens.push(Token::Offset(OffsetSyntax { colon: Colon::Required, ..PERCENT_Z })),
        "Z" => tokens.push(Token::ZoneName),
        "s" => tokens.push(Token::EpochSeconds),
        "n" | "t" => {
            if tokens.last() != Some(&Token::Whitespace) {
                tokens.push(Token::Whitespace);
            }
        }
        "T" => {
            expand("H", index, tokens)?;
            tokens.push(Token::Literal(String::from(":")));
            expand("M", index, tokens)?;
            tokens.push(Token::Literal(String::from(":")));
            expand("S", index, tokens)?;
        }
        "R" => {
            expand("H", index, tokens)?;
            tokens.push(Token::Literal(String::from(":")));
            expand("M", index, tokens)?;
        }
        "F" => {
            expand("Y", index, tokens)?;
            tokens.push(Token::Literal(String::from("-")));
            expand("m", index, tokens)?;
            tokens.push(Token::Literal(String::from("-")));
            expand("d", index, tokens)?;
        }
        "D" => {
            expand("m", index, tokens)?;
            tokens.push(Token::Literal(String::from("/")));
            expand("d", index, tokens)?;
            tokens.push(Token::Literal(String::from("/")));
            expand("y", index, tokens)?;
        }
        _ => {
            return Err(format!(
                "strftime specifier '%{spec}' at position {} is not supported (supported: {SUPPORTED})",
                index + 1
            ))
        }
    }
    Ok(())
}

/// Either `%s`, or enough to name a day.
fn check_complete(tokens: &[Token]) -> Result<(), String> {
    let has = |wanted: fn(&Token) -> bool| tokens.iter().any(wanted);
    if has(|t| matches!(t, Token::EpochSeconds)) {
        return Ok(());
    }
    if !has(|t| matches!(t, Token::Year { .. } | Token::YearTwoDigit { .. })) {
        return Err(String::from("the pattern has no year (%Y, %y or %F) and no %s"));
    }
    let day_of_year = has(|t| matches!(t, Token::DayOfYear { .. }));
    if !day_of_year && !has(|t| matches!(t, Token::Month { .. } | Token::MonthNameAny)) {
        return Err(String::from("the pattern has no month (%m, %b, %B or %F) and no %j"));
    }
    if !day_of_year && !has(|t| matches!(t, Token::Day { .. } | Token::DaySpacePadded)) {
        return Err(String::from("the pattern has no day of month (%d, %e or %F) and no %j"));
    }
    if has(|t| matches!(t, Token::ClockHour { .. })) && !has(|t| matches!(t, Token::AmPm)) {
        return Err(String::from("%I is the 1-12 clock hour and needs %p (AM/PM); use %H for 0-23"));
    }
    Ok(())
}
