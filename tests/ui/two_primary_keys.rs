use wyrmhole::Model;

#[derive(Model)]
struct Membership {
    #[wyrm(primary_key)]
    user_id: i32,
    #[wyrm(primary_key)]
    list_id: i32,
}

fn main() {}
