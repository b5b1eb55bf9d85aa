//! "Bind to Frame.io" on a DAM folder: account, workspace (team, on the Legacy API)
//! and project as the user's connection sees them, projects shared with the user
//! beside them, and the custom action's name. Submitting binds with
//! `bindings::bind`; a name already used in the workspace is shown beside the name,
//! and nothing is made.

use super::{Choice, Field, FieldKind, FieldProblem, Form, FormContext, Outcome, SubmitError, Values, first_pages};
use crate::error::{Error, Result};
use crate::flows::bindings::{self, BindRequest};
use crate::flows::{Context, browse};
use crate::frameio::model::Generation;

pub const DIALOG: &str = "bind";

/// The value chosen when it is one of `ids`, else the first of them.
fn pick(chosen: &str, ids: &[String]) -> String {
    if ids.iter().any(|id| id == chosen) { chosen.to_string() } else { ids.first().cloned().unwrap_or_default() }
}

fn more_note(more: bool, what: &str) -> String {
    if more { format!("Only the first {what} are listed.") } else { String::new() }
}

/// The folder the dialog binds.
fn folder(ctx: &Context, context: &FormContext) -> Result<crate::host::Folder> {
    ctx.host.get_folder(&context.subject).map_err(|_| Error::NotFound(format!("DAM folder {}", context.subject)))
}

/// The bind dialog, with the choices that follow the values so far.
pub fn describe(ctx: &Context, context: &FormContext, values: &Values) -> Result<Form> {
    let user = &context.user;
    let folder = folder(ctx, context)?;
    let workspace_word = if ctx.settings.api == Generation::V2 { "Team" } else { "Workspace" };

    let (accounts, more_accounts) = first_pages(|c| browse::accounts(ctx, user, c))?;
    let account = pick(values.get("account"), &accounts.iter().map(|a| a.id.clone()).collect::<Vec<_>>());
    let (workspaces, more_workspaces) = match account.is_empty() {
        true => (Vec::new(), false),
        false => first_pages(|c| browse::workspaces(ctx, user, &account, c))?,
    };
    let workspace = pick(values.get("workspace"), &workspaces.iter().map(|w| w.id.clone()).collect::<Vec<_>>());
    let (projects, more_projects) = match workspace.is_empty() {
        true => (Vec::new(), false),
        false => first_pages(|c| browse::projects(ctx, user, &account, &workspace, c))?,
    };
    let (shared, _) = first_pages(|c| browse::shared_projects(ctx, user, c))?;

    let workspace_name = workspaces.iter().find(|w| w.id == workspace).map_or(String::new(), |w| w.name.clone());
    let mut project_choices: Vec<Choice> =
        projects.iter().map(|p| Choice::new(&p.id, &p.name).in_group(&workspace_name)).collect();
    project_choices.extend(shared.iter().map(|p| Choice::new(&p.id, &p.name).in_group("Shared with you")));
    let project_ids: Vec<String> = project_choices.iter().map(|c| c.value.clone()).collect();
    let project = pick(values.get("project"), &project_ids);
    let default_name: String = format!("Push to {}", folder.title).chars().take(64).collect();

    let fields = vec![
        Field::new("account", "Account", FieldKind::Choice)
            .required()
            .refresh()
            .value(account)
            .choices(accounts.iter().map(|a| Choice::new(&a.id, &a.name)).collect())
            .help(more_note(more_accounts, "accounts")),
        Field::new("workspace", workspace_word, FieldKind::Choice)
            .required()
            .refresh()
            .value(workspace)
            .choices(workspaces.iter().map(|w| Choice::new(&w.id, &w.name)).collect())
            .help(more_note(more_workspaces, "workspaces")),
        Field::new("project", "Project", FieldKind::Choice)
            .required()
            .value(project)
            .choices(project_choices)
            .help(match project_ids.is_empty() {
                true => format!("No project to bind: this {} has none you can see.", workspace_word.to_lowercase()),
                false => more_note(more_projects, "projects"),
            }),
        Field::new("action-name", "Custom action name", FieldKind::Text)
            .required()
            .max_length(64)
            .value(values.or("action-name", &default_name))
            .help(format!("What Frame.io users see in a file's menu; unique within the {}.", workspace_word.to_lowercase())),
    ];
    Ok(Form {
        dialog: DIALOG.into(),
        title: format!("Bind {} to Frame.io", folder.path),
        intro: "Frame.io users of the project run the custom action on a file to push it into this folder.".into(),
        fields,
        submit_label: "Bind".into(),
        actions: Vec::new(),
        problem: String::new(),
    })
}

/// Binds the folder, or says which field to fix.
pub fn submit(ctx: &Context, context: &FormContext, values: &Values) -> std::result::Result<Outcome, SubmitError> {
    let folder = folder(ctx, context)?;
    let mut problems = Vec::new();
    if values.get("project").is_empty() {
        problems.push(FieldProblem::new("project", "Choose a project."));
    }
    if ctx.settings.api == Generation::V4 && values.get("account").is_empty() {
        problems.push(FieldProblem::new("account", "Choose an account."));
    }
    if let Err(Error::InvalidInput(why)) = bindings::checked_action_name(values.get("action-name")) {
        problems.push(FieldProblem::new("action-name", why));
    }
    if !problems.is_empty() {
        return Err(SubmitError::Invalid(problems));
    }
    let req = BindRequest {
        user: context.user.clone(),
        folder_id: folder.id,
        account_id: values.get("account").to_string(),
        project_id: values.get("project").to_string(),
        action_name: values.get("action-name").to_string(),
    };
    let binding = bindings::bind(ctx, &req).map_err(|e| match e {
        // The one clash a bind can have is the action's name.
        Error::Conflict(why) => SubmitError::Invalid(vec![FieldProblem::new("action-name", why)]),
        Error::NotFound(what) if what.starts_with("Frame.io project") => {
            SubmitError::Invalid(vec![FieldProblem::new("project", format!("{what} was not found, or you cannot see it."))])
        }
        other => SubmitError::Failed(other),
    })?;
    Ok(Outcome {
        message: format!(
            "{} is bound to {}: Frame.io users run \"{}\" on a file to push it here.",
            binding.folder_path, binding.project_name, binding.action_name
        ),
        enqueue: Vec::new(),
        made: vec![("binding-id".into(), binding.id)],
    })
}
