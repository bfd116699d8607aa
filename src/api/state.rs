//! Actor state for both front doors (SPEC ST1-ST3): a read needs no active
//! actor, a transaction does (as daprd). [`crate::runtime::state`] owns the
//! rules about keys, values and ttls.

use crate::api::{ActorApi, ApiError};
use crate::runtime::state::{Operation, StateValue};
use crate::runtime::table::ActorKey;

impl ActorApi {
    /// ST1: the bytes last stored, empty when none.
    pub async fn get_state(
        &self,
        actor_type: &str,
        actor_id: &str,
        key: &str,
    ) -> Result<StateValue, ApiError> {
        let runtime = self.runtime()?;
        Ok(runtime.state().get(actor_type, actor_id, key).await?)
    }

    /// ST2, ST3: all or nothing, on an active actor only.
    pub async fn transact_state(
        &self,
        actor_type: String,
        actor_id: String,
        operations: Vec<Operation>,
    ) -> Result<(), ApiError> {
        let runtime = self.runtime()?;
        let key = ActorKey::new(actor_type, actor_id);
        if !runtime.is_active(key.clone()).await? {
            return Err(ApiError::ActorNotActive);
        }
        runtime
            .state()
            .transact(&key.actor_type, &key.actor_id, operations)
            .await?;
        Ok(())
    }
}
