//! Calls into the `forms` export: the dialogs the connector describes, for the
//! console (or any DAM screen) to render and submit.

use super::dialogs::{Form, FormContext, Outcome, SubmitError};
use super::{ConnectorError, Property, Runtime};

impl Runtime {
    /// The names of the dialogs the connector describes.
    pub async fn form_dialogs(&self) -> anyhow::Result<Vec<String>> {
        let mut call = self.instance().await?;
        Ok(self.exports.dialogs.load(&mut call.store, &call.instance)?.call_dialogs(&mut call.store).await?)
    }

    /// Dialog `dialog` for `context`, with the values entered so far.
    pub async fn form_describe(&self, dialog: &str, context: &FormContext, values: &[Property]) -> anyhow::Result<Result<Form, ConnectorError>> {
        let mut call = self.instance().await?;
        let forms = self.exports.dialogs.load(&mut call.store, &call.instance)?;
        Ok(forms.call_describe(&mut call.store, dialog, context, values).await?)
    }

    /// Submits `dialog` by `action` (empty: its submit button).
    pub async fn form_submit(
        &self,
        dialog: &str,
        action: &str,
        context: &FormContext,
        values: &[Property],
    ) -> anyhow::Result<Result<Outcome, SubmitError>> {
        let mut call = self.instance().await?;
        let forms = self.exports.dialogs.load(&mut call.store, &call.instance)?;
        Ok(forms.call_submit(&mut call.store, dialog, action, context, values).await?)
    }
}
