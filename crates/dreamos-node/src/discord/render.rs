//! Replies as Discord messages, always within Discord's limits: content 2,000 characters; at
//! most 10 embeds; per embed a title of 256, a description of 4,096, 25 fields (name 256,
//! value 1,024), a footer of 2,048, and 6,000 characters in all. Longer text is cut at a
//! character boundary with a mark; fields that do not fit are counted in the footer, never
//! sent over the limit.

use twilight_model::channel::message::component::{ActionRow, Button, ButtonStyle, Component};
use twilight_model::channel::message::embed::{EmbedField, EmbedFooter};
use twilight_model::channel::message::{Embed, MessageFlags};
use twilight_model::http::interaction::{
    InteractionResponse, InteractionResponseData, InteractionResponseType,
};

pub const CONTENT_MAX: usize = 2_000;
pub const TITLE_MAX: usize = 256;
pub const DESCRIPTION_MAX: usize = 4_096;
pub const FIELDS_MAX: usize = 25;
pub const FIELD_NAME_MAX: usize = 256;
pub const FIELD_VALUE_MAX: usize = 1_024;
pub const FOOTER_MAX: usize = 2_048;
pub const EMBED_TOTAL_MAX: usize = 6_000;
pub const EMBEDS_MAX: usize = 10;

pub const GREEN: u32 = 0x2e_cc_71;
pub const RED: u32 = 0xe7_4c_3c;
pub const BLUE: u32 = 0x34_98_db;
pub const GREY: u32 = 0x95_a5_a6;

/// What a command answers, before it meets Discord's limits.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub content: String,
    pub embeds: Vec<Card>,
    /// Only the caller sees it (refusals, errors).
    pub ephemeral: bool,
    /// Buttons: (custom id, label).
    pub buttons: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Card {
    pub title: String,
    pub description: String,
    pub fields: Vec<(String, String)>,
    pub footer: Option<String>,
    pub color: Option<u32>,
}

impl Reply {
    pub fn text(content: impl Into<String>) -> Self {
        Self { content: content.into(), ..Self::default() }
    }

    /// A refusal or an error: only the caller sees it.
    pub fn private(content: impl Into<String>) -> Self {
        Self { content: content.into(), ephemeral: true, ..Self::default() }
    }

    pub fn card(card: Card) -> Self {
        Self { embeds: vec![card], ..Self::default() }
    }
}

/// Cuts `text` to at most `max` characters, marking the cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A code block of `lang` holding as much of `code` as fits in `max` characters.
pub fn code_block(lang: &str, code: &str, max: usize) -> String {
    let fence = format!("```{lang}\n");
    let room = max.saturating_sub(fence.len() + 4);
    // Backticks inside would end the block early.
    let code = code.replace("```", "`\u{200b}``");
    format!("{fence}{}\n```", clip(&code, room))
}

fn embed(card: &Card, budget: &mut usize) -> Embed {
    let title = clip(&card.title, TITLE_MAX.min(*budget));
    *budget -= title.chars().count();
    let description = clip(&card.description, DESCRIPTION_MAX.min(*budget));
    *budget -= description.chars().count();
    let reserve = 60; // for the footer that counts left-out fields
    let mut fields = Vec::new();
    let mut left_out = 0;
    for (name, value) in &card.fields {
        let name = clip(if name.is_empty() { "\u{200b}" } else { name }, FIELD_NAME_MAX);
        let value = clip(if value.is_empty() { "\u{200b}" } else { value }, FIELD_VALUE_MAX);
        let size = name.chars().count() + value.chars().count();
        if fields.len() == FIELDS_MAX || size + reserve > *budget {
            left_out += 1;
            continue;
        }
        *budget -= size;
        fields.push(EmbedField { inline: false, name, value });
    }
    // The count first: a long footer is cut from its end.
    let footer = match (left_out, card.footer.clone().unwrap_or_default()) {
        (0, f) => f,
        (n, f) if f.is_empty() => format!("{n} more not shown"),
        (n, f) => format!("{n} more not shown · {f}"),
    };
    let footer = (!footer.is_empty()).then(|| {
        let text = clip(&footer, FOOTER_MAX.min(*budget));
        *budget -= text.chars().count();
        EmbedFooter { icon_url: None, proxy_icon_url: None, text }
    });
    Embed {
        author: None,
        color: card.color,
        description: (!description.is_empty()).then_some(description),
        fields,
        flags: None,
        footer,
        image: None,
        kind: "rich".into(),
        provider: None,
        thumbnail: None,
        timestamp: None,
        title: (!title.is_empty()).then_some(title),
        url: None,
        video: None,
    }
}

/// The reply as Discord message data, within every limit.
pub fn data(reply: &Reply) -> InteractionResponseData {
    let mut budget = EMBED_TOTAL_MAX;
    let embeds: Vec<Embed> =
        reply.embeds.iter().take(EMBEDS_MAX).map(|c| embed(c, &mut budget)).collect();
    let buttons: Vec<Component> = reply
        .buttons
        .iter()
        .take(5)
        .map(|(id, label)| {
            Component::Button(Button {
                custom_id: Some(clip(id, 100)),
                disabled: false,
                emoji: None,
                id: None,
                label: Some(clip(label, 80)),
                sku_id: None,
                style: ButtonStyle::Secondary,
                url: None,
            })
        })
        .collect();
    let components = if buttons.is_empty() {
        Vec::new()
    } else {
        vec![Component::ActionRow(ActionRow { components: buttons, id: None })]
    };
    InteractionResponseData {
        content: Some(clip(&reply.content, CONTENT_MAX)),
        embeds: Some(embeds),
        components: Some(components),
        flags: reply.ephemeral.then_some(MessageFlags::EPHEMERAL),
        allowed_mentions: None,
        ..InteractionResponseData::default()
    }
}

/// The immediate answer to an interaction.
pub fn message(reply: &Reply) -> InteractionResponse {
    InteractionResponse {
        kind: InteractionResponseType::ChannelMessageWithSource,
        data: Some(data(reply)),
    }
}

/// "Thinking…": the real answer follows by editing the original.
pub fn deferred() -> InteractionResponse {
    InteractionResponse {
        kind: InteractionResponseType::DeferredChannelMessageWithSource,
        data: None,
    }
}

/// A button press that changes the message it is on.
pub fn update(reply: &Reply) -> InteractionResponse {
    InteractionResponse { kind: InteractionResponseType::UpdateMessage, data: Some(data(reply)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(e: &Embed) -> usize {
        let c = |s: &Option<String>| s.as_deref().map_or(0, |s| s.chars().count());
        c(&e.title)
            + c(&e.description)
            + e.footer.as_ref().map_or(0, |f| f.text.chars().count())
            + e.fields
                .iter()
                .map(|f| f.name.chars().count() + f.value.chars().count())
                .sum::<usize>()
    }

    #[test]
    fn oversized_replies_fit_every_limit() {
        let huge = "é".repeat(10_000);
        let card = Card {
            title: huge.clone(),
            description: huge.clone(),
            fields: (0..40).map(|i| (format!("{i}{huge}"), huge.clone())).collect(),
            footer: Some(huge.clone()),
            color: None,
        };
        let reply = Reply { content: huge.clone(), embeds: vec![card; 12], ..Reply::default() };
        let d = data(&reply);
        assert_eq!(d.content.as_ref().unwrap().chars().count(), CONTENT_MAX);
        let embeds = d.embeds.unwrap();
        assert_eq!(embeds.len(), EMBEDS_MAX);
        let all: usize = embeds.iter().map(total).sum();
        assert!(all <= EMBED_TOTAL_MAX, "{all}");
        let first = &embeds[0];
        assert!(first.title.as_ref().unwrap().chars().count() <= TITLE_MAX);
        assert!(first.fields.len() <= FIELDS_MAX);
        assert!(first.footer.as_ref().unwrap().text.contains("more not shown"));
    }

    #[test]
    fn code_blocks_stay_closed() {
        let block = code_block("python", &"x = '```'\n".repeat(500), FIELD_VALUE_MAX);
        assert!(block.chars().count() <= FIELD_VALUE_MAX);
        assert!(block.starts_with("```python\n") && block.ends_with("\n```"));
        assert_eq!(block.matches("```").count(), 2);
    }
}
