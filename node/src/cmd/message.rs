//! `omsyn message send`: a message about a patient to the home, the care team or the base,
//! with pictures.

use anyhow::{Context, Result, anyhow};
use omsyn_core::docs::messages::{Recipient, picture_type};
use omsyn_core::service::NewMessage;

use super::{Ctx, Flagged};
use crate::cli::{MessageCmd, RecipientArg};
use crate::client::read_input;
use crate::output::emit;

pub(crate) fn run(cx: Ctx<'_>, cmd: MessageCmd) -> Result<()> {
    let MessageCmd::Send {
        patient,
        to,
        text,
        reply_to,
        picture,
    } = cmd;
    let to = match to {
        RecipientArg::Home => Recipient::Home,
        RecipientArg::CareTeam => Recipient::CareTeam,
        RecipientArg::Base => Recipient::Base,
    };
    let pictures = picture
        .iter()
        .map(|path| {
            let bytes = read_input(path)?;
            let kind = picture_type(&bytes)
                .ok_or_else(|| anyhow!("{} is not a JPEG, PNG or WebP picture", path.display()))
                .with_context(|| format!("--picture {}", path.display()))?;
            let name = path.file_name().and_then(|n| n.to_str()).map(str::to_owned);
            Ok((kind.to_owned(), name, bytes))
        })
        .collect::<Result<Vec<_>>>()?;
    let message = cx
        .svc
        .send_message(NewMessage {
            patient,
            to,
            text,
            in_reply_to: reply_to,
            pictures,
        })
        .flagged()?;
    emit(cx.json, &message, || message.id.to_string());
    Ok(())
}
